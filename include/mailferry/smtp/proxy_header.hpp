// proxy_header.hpp: the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a
// load balancer sends before anything else, carrying the real client's address. It lives in smtp/
// because it is the listener's preamble to an SMTP session: a listener with proxy_protocol = true
// feeds the first bytes of a connection here, and only what remains() after it goes to TLS or SMTP.
//
// Pure and incremental: bytes in any chunks, no socket, no clock (the caller owns the timeout).
// It never takes a byte past the header, and it refuses input as soon as the bytes seen so far can
// no longer start a valid header, so a client that sends "EHLO" or a TLS ClientHello instead of a
// header is refused at once rather than after the timeout.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace mailferry::smtp {

struct ProxyHeader {
  // local: the proxy's own connection (a health check); the real endpoints are the socket's.
  // v1 has no such command, so a v1 header is always `proxy`.
  enum class Command { local, proxy };
  // unspec: no address to use (v1 "UNKNOWN", v2 AF_UNSPEC, or any LOCAL header). Whether a
  // connection with no address is acceptable is the caller's policy, not the parser's.
  enum class Family { unspec, inet, inet6 };

  int version = 0;  // 1 or 2
  Command command = Command::local;
  Family family = Family::unspec;
  std::array<std::uint8_t, 16> source_addr{};  // network order; inet uses the first 4 bytes
  std::array<std::uint8_t, 16> dest_addr{};
  std::uint16_t source_port = 0;
  std::uint16_t dest_port = 0;
  std::string source_text;  // canonical ("192.0.2.1", "2001:db8::1"); empty when unspec

  bool has_address() const { return family != Family::unspec; }
};

// The source as policy should see it: an IPv4-mapped IPv6 source (::ffff:a.b.c.d, which proxies
// with dual-stack sockets send for IPv4 clients) becomes the IPv4 address, so that it matches IPv4
// networks in trusted_networks and proxy_from and is logged as the client would recognise it.
struct EffectiveSource {
  ProxyHeader::Family family = ProxyHeader::Family::unspec;
  std::array<std::uint8_t, 16> addr{};  // inet uses the first 4 bytes
  std::string text;
};
EffectiveSource effective_source(const ProxyHeader& header);

class ProxyHeaderParser {
 public:
  enum class Status { need_more, done, invalid };

  // Takes the bytes that belong to the header and keeps the rest for remaining(). Once done or
  // invalid the status is sticky: later bytes after done are appended to remaining() (nothing is
  // lost), and after invalid they are ignored.
  Status feed(std::span<const char> bytes);

  Status status() const { return status_; }
  // Valid only once feed() returned done.
  const ProxyHeader& header() const { return header_; }
  // Bytes received after the header (the start of SMTP, or a TLS ClientHello on an implicit-TLS
  // listener) that arrived in the same reads; empty until done.
  std::span<const char> remaining() const { return rest_; }
  // Why the input was refused, one line for the log; empty unless invalid.
  std::string error() const { return error_; }

  // v1: "PROXY UNKNOWN <two IPv6 addresses> 65535 65535\r\n" is the longest line the spec allows.
  static constexpr std::size_t max_v1_line = 107;
  // v2: the spec expects the whole header to fit in one segment, and 536 bytes is the MSS a TCP
  // must assume when none is announced (RFC 1122 §4.2.2.6). Bounding the address+TLV block (not the
  // whole header) at that size leaves the fixed 16 bytes as slack for senders that count only the
  // block; it holds the largest address block (AF_UNIX, 216) plus the TLVs load balancers send
  // (ALPN, SNI, TLS details, cloud endpoint ids), while a 64 KiB length is refused at byte 16.
  static constexpr std::size_t max_v2_block = 536;

 private:
  Status fail(std::string message);
  Status feed_v1(std::span<const char> bytes, std::size_t& used);
  Status feed_v2(std::span<const char> bytes, std::size_t& used);
  Status finish_v1();
  Status finish_v2();

  Status status_ = Status::need_more;
  std::string buf_;  // the header bytes so far (at most max_v1_line or 16 + max_v2_block)
  std::string rest_;
  std::string error_;
  ProxyHeader header_;
};

}  // namespace mailferry::smtp
