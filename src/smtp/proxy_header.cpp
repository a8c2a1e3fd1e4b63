// proxy_header.cpp: PROXY protocol v1/v2 header parsing (HAProxy's proxy-protocol.txt).
#include "mailferry/smtp/proxy_header.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

namespace mailferry::smtp {

namespace {

constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::array<char, 12> v2_signature{'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr std::size_t v2_fixed = 16;  // signature, version/command, family/protocol, length

// v2 byte 14: the address family in the high nibble, the transport in the low one.
constexpr unsigned char v2_unspec = 0x00;
constexpr unsigned char v2_tcp4 = 0x11;
constexpr unsigned char v2_tcp6 = 0x21;

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

bool is_v4_mapped(const std::array<std::uint8_t, 16>& a) {
  return std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), a.begin());
}

std::string format_address(ProxyHeader::Family family, const std::uint8_t* bytes) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == ProxyHeader::Family::inet ? AF_INET : AF_INET6, bytes, text, sizeof text);
  return text;
}

// Decimal without heading zeroes ("0" itself is fine), as v1 requires for octets and ports so that
// nothing can be read as octal.
std::optional<unsigned> parse_decimal(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  unsigned value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

// Exactly four dot-separated octets. Written out rather than left to inet_pton, whose handling of
// heading zeroes differs between C libraries.
bool parse_v4(std::string_view s, std::uint8_t* out) {
  for (int i = 0; i < 4; ++i) {
    const auto dot = s.find('.');
    if ((dot == std::string_view::npos) != (i == 3)) return false;
    const auto octet = parse_decimal(s.substr(0, dot), 255);
    if (!octet) return false;
    out[i] = static_cast<std::uint8_t>(*octet);
    s = i == 3 ? std::string_view{} : s.substr(dot + 1);
  }
  return true;
}

// Hex groups with at most one "::"; a trailing dotted IPv4 part is accepted because inet_ntop
// writes v4-mapped addresses that way and proxies print their addresses with it.
bool parse_v6(std::string_view s, std::uint8_t* out) {
  if (s.empty() || s.size() > 45) return false;
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    if (!ok) return false;
  }
  const std::string z(s);
  return inet_pton(AF_INET6, z.c_str(), out) == 1;
}

std::uint16_t be16(const std::string& b, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(b[at]) << 8) | static_cast<unsigned char>(b[at + 1]));
}

// Whether `line` (no LF yet) can still grow into a valid v1 line; lets garbage be refused before
// its CRLF or the length cap arrives. The complete line is checked strictly by finish_v1.
bool v1_prefix_plausible(std::string_view line) {
  const std::size_t n = std::min(line.size(), v1_prefix.size());
  if (line.substr(0, n) != v1_prefix.substr(0, n)) return false;
  if (line.size() <= v1_prefix.size()) return true;
  const std::string_view rest = line.substr(v1_prefix.size());
  // A CR that is not the newest byte was not followed by LF: the spec forbids a lone CR.
  const auto cr = rest.find('\r');
  if (cr != std::string_view::npos && cr + 1 != rest.size()) return false;
  for (const std::string_view proto : {std::string_view("TCP4 "), std::string_view("TCP6 ")}) {
    const std::size_t m = std::min(rest.size(), proto.size());
    if (rest.substr(0, m) != proto.substr(0, m)) continue;
    const std::string_view fields = rest.substr(m);
    if (fields.empty()) return true;
    const bool v6 = proto[3] == '6';
    int spaces = 0;
    char prev = ' ';  // a field may not start with a space either
    for (char c : fields) {
      const bool digit = c >= '0' && c <= '9';
      const bool hex = (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (c == ' ') {
        if (prev == ' ' || ++spaces > 3) return false;
      } else if (c == '\r') {
        if (prev == ' ' || spaces != 3) return false;
      } else if (!(digit || c == '.' || (v6 && (hex || c == ':')))) {
        return false;
      }
      prev = c;
    }
    return true;
  }
  constexpr std::string_view unknown = "UNKNOWN";
  const std::size_t m = std::min(rest.size(), unknown.size());
  if (rest.substr(0, m) != unknown.substr(0, m)) return false;
  // After UNKNOWN the spec lets the sender put anything before CRLF, but as a separate field.
  return rest.size() == m || rest[m] == ' ' || rest[m] == '\r';
}

}  // namespace

EffectiveSource effective_source(const ProxyHeader& header) {
  EffectiveSource out;
  out.family = header.family;
  out.addr = header.source_addr;
  out.text = header.source_text;
  if (header.family == ProxyHeader::Family::inet6 && is_v4_mapped(header.source_addr)) {
    out.family = ProxyHeader::Family::inet;
    out.addr = {};
    std::copy_n(header.source_addr.begin() + 12, 4, out.addr.begin());
    out.text = format_address(out.family, out.addr.data());
  }
  return out;
}

ProxyHeaderParser::Status ProxyHeaderParser::fail(std::string message) {
  status_ = Status::invalid;
  error_ = std::move(message);
  buf_.clear();
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::feed(std::span<const char> bytes) {
  if (status_ == Status::done) {
    rest_.append(bytes.data(), bytes.size());
    return status_;
  }
  if (status_ == Status::invalid || bytes.empty()) return status_;
  // The first byte decides: 'P' can only start v1 and CR only v2's signature.
  const char first = buf_.empty() ? bytes[0] : buf_[0];
  if (first != v1_prefix[0] && first != v2_signature[0]) return fail("not a PROXY protocol header");
  std::size_t used = 0;
  const Status s = first == v1_prefix[0] ? feed_v1(bytes, used) : feed_v2(bytes, used);
  if (s == Status::done) rest_.assign(bytes.data() + used, bytes.size() - used);
  return s;
}

ProxyHeaderParser::Status ProxyHeaderParser::feed_v1(std::span<const char> bytes, std::size_t& used) {
  // Byte by byte up to the LF at most: the line is short and nothing past it may be taken.
  while (used < bytes.size()) {
    const char c = bytes[used++];
    if (c == '\n') {
      if (buf_.empty() || buf_.back() != '\r') return fail("PROXY v1 line ends in a bare LF");
      buf_.pop_back();
      return finish_v1();
    }
    buf_.push_back(c);
    if (buf_.size() >= max_v1_line - 1 && !(buf_.size() == max_v1_line - 1 && c == '\r')) {
      return fail("PROXY v1 line longer than 107 bytes");
    }
  }
  if (!v1_prefix_plausible(buf_)) return fail("not a PROXY v1 line");
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::finish_v1() {
  const std::string_view line = buf_;
  // The CR of the CRLF is already gone: any other CR stood alone.
  if (line.find('\r') != std::string_view::npos) return fail("PROXY v1 line has a bare CR");
  if (!v1_prefix_plausible(line) || line.size() < v1_prefix.size()) return fail("not a PROXY v1 line");
  std::string_view rest = line.substr(v1_prefix.size());
  header_ = {};
  header_.version = 1;
  header_.command = ProxyHeader::Command::proxy;
  if (rest.substr(0, 7) == "UNKNOWN") {
    // The addresses, if any, are to be ignored; the connection's own endpoints apply.
    status_ = Status::done;
    return status_;
  }
  if (rest.size() < 5) return fail("PROXY v1 line: unknown protocol");
  const bool v6 = rest.substr(0, 5) == "TCP6 ";
  rest.remove_prefix(5);
  std::array<std::string_view, 4> fields;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto space = rest.find(' ');
    if ((space == std::string_view::npos) != (i == 3)) return fail("PROXY v1 line: wrong number of fields");
    fields[i] = rest.substr(0, space);
    rest = i == 3 ? std::string_view{} : rest.substr(space + 1);
  }
  header_.family = v6 ? ProxyHeader::Family::inet6 : ProxyHeader::Family::inet;
  const auto parse_addr = v6 ? parse_v6 : parse_v4;
  if (!parse_addr(fields[0], header_.source_addr.data())) return fail("PROXY v1 line: bad source address");
  if (!parse_addr(fields[1], header_.dest_addr.data())) return fail("PROXY v1 line: bad destination address");
  const auto source_port = parse_decimal(fields[2], 65535);
  const auto dest_port = parse_decimal(fields[3], 65535);
  if (!source_port || !dest_port) return fail("PROXY v1 line: bad port");
  header_.source_port = static_cast<std::uint16_t>(*source_port);
  header_.dest_port = static_cast<std::uint16_t>(*dest_port);
  header_.source_text = format_address(header_.family, header_.source_addr.data());
  status_ = Status::done;
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::feed_v2(std::span<const char> bytes, std::size_t& used) {
  while (used < bytes.size()) {
    // The fixed part is taken first so that the length is known before the block is.
    const std::size_t want = buf_.size() < v2_fixed ? v2_fixed : v2_fixed + be16(buf_, 14);
    const std::size_t take = std::min(want - buf_.size(), bytes.size() - used);
    const std::size_t from = buf_.size();
    buf_.append(bytes.data() + used, take);
    used += take;
    // Check each fixed byte as it arrives, so that a mismatch is refused without waiting for more.
    for (std::size_t i = from; i < buf_.size() && i < v2_fixed; ++i) {
      const auto b = static_cast<unsigned char>(buf_[i]);
      if (i < v2_signature.size() && buf_[i] != v2_signature[i]) return fail("not a PROXY protocol header");
      if (i == 12) {
        if ((b >> 4) != 2) return fail("PROXY v2 header: unsupported version " + std::to_string(b >> 4));
        if ((b & 0x0F) > 1) return fail("PROXY v2 header: unknown command " + std::to_string(b & 0x0F));
      }
      // LOCAL ignores the family byte by the spec's rule; under PROXY only TCP or "unspecified"
      // will do. UDP cannot carry SMTP; AF_UNIX is refused rather than treated as unspecified,
      // because falling back to the socket's address would lend the proxy's own trust (it is in
      // proxy_from, perhaps in trusted_networks) to a client the relay knows nothing about.
      if (i == 13 && (buf_[12] & 0x0F) == 1 && b != v2_unspec && b != v2_tcp4 && b != v2_tcp6) {
        if ((b >> 4) == 3) return fail("PROXY v2 header: AF_UNIX source not supported");
        if ((b & 0x0F) == 2) return fail("PROXY v2 header: datagram transport not supported");
        return fail("PROXY v2 header: unsupported address family/protocol");
      }
      if (i == 15) {
        const std::size_t len = be16(buf_, 14);
        if (len > max_v2_block) return fail("PROXY v2 header: address block of " + std::to_string(len) + " bytes");
        const auto fam = static_cast<unsigned char>(buf_[13]);
        if ((buf_[12] & 0x0F) == 1 && ((fam == v2_tcp4 && len < 12) || (fam == v2_tcp6 && len < 36))) {
          return fail("PROXY v2 header: address block too short for its family");
        }
      }
    }
    if (buf_.size() >= v2_fixed && buf_.size() == v2_fixed + be16(buf_, 14)) return finish_v2();
  }
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::finish_v2() {
  header_ = {};
  header_.version = 2;
  const std::size_t len = be16(buf_, 14);
  if ((buf_[12] & 0x0F) == 0) {
    // LOCAL: the block, whatever it holds, is skipped unread.
    header_.command = ProxyHeader::Command::local;
    status_ = Status::done;
    return status_;
  }
  header_.command = ProxyHeader::Command::proxy;
  const auto fam = static_cast<unsigned char>(buf_[13]);
  if (fam == v2_unspec) {
    status_ = Status::done;
    return status_;
  }
  const std::size_t addr_len = fam == v2_tcp4 ? 4 : 16;
  header_.family = fam == v2_tcp4 ? ProxyHeader::Family::inet : ProxyHeader::Family::inet6;
  const auto* block = reinterpret_cast<const std::uint8_t*>(buf_.data()) + v2_fixed;
  std::memcpy(header_.source_addr.data(), block, addr_len);
  std::memcpy(header_.dest_addr.data(), block + addr_len, addr_len);
  header_.source_port = be16(buf_, v2_fixed + 2 * addr_len);
  header_.dest_port = be16(buf_, v2_fixed + 2 * addr_len + 2);
  header_.source_text = format_address(header_.family, header_.source_addr.data());
  // TLVs are not used, but they must tile the rest of the block exactly: a length that overruns
  // means the sender and this parser disagree about where the header ends.
  std::size_t at = 2 * addr_len + 4;
  while (at < len) {
    if (len - at < 3) return fail("PROXY v2 header: truncated TLV");
    const std::size_t tlv_len = be16(buf_, v2_fixed + at + 1);
    if (len - at - 3 < tlv_len) return fail("PROXY v2 header: TLV overruns the header");
    at += 3 + tlv_len;
  }
  status_ = Status::done;
  return status_;
}

}  // namespace mailferry::smtp
