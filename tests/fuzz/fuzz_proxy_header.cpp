// fuzz_proxy_header.cpp: the PROXY protocol v1/v2 parser (smtp::ProxyHeaderParser).
// Byte 0 is the chunking seed; the rest is what the load balancer (or an attacker) sends first.
// Invariants: fed whole, byte by byte, or in input-derived chunks, the parser reaches the same
// status, header and remaining bytes; it never takes more than the header (header + remaining ==
// input); a v1 header is at most 107 bytes and a v2 header at most 16 + 536; an accepted address
// prints as its canonical text.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "mailferry/smtp/proxy_header.hpp"

using namespace mailferry;
using smtp::ProxyHeader;
using smtp::ProxyHeaderParser;

namespace {

struct Outcome {
  ProxyHeaderParser::Status status;
  ProxyHeader header;
  std::string remaining;
};

Outcome parse(std::string_view input, std::uint8_t seed, bool bytewise) {
  ProxyHeaderParser p;
  if (bytewise) {
    for (char c : input) p.feed(std::span<const char>(&c, 1));
  } else {
    fuzz::Chunker chunks(input, seed);
    while (!chunks.done()) p.feed(fuzz::as_span(chunks.next()));
  }
  p.feed(std::span<const char>{});   // an empty read changes nothing
  Outcome o{p.status(), {}, {}};
  if (p.status() == ProxyHeaderParser::Status::done) {
    o.header = p.header();
    o.remaining.assign(p.remaining().data(), p.remaining().size());
  } else {
    FUZZ_CHECK(p.remaining().empty(), "remaining bytes before the header is done");
  }
  if (p.status() == ProxyHeaderParser::Status::invalid) {
    FUZZ_CHECK(!p.error().empty() && p.error().find('\n') == std::string::npos, "invalid without a one-line reason");
  } else {
    FUZZ_CHECK(p.error().empty(), "an error without invalid");
  }
  return o;
}

bool same(const Outcome& a, const Outcome& b) {
  if (a.status != b.status) return false;
  if (a.status != ProxyHeaderParser::Status::done) return true;
  const ProxyHeader& x = a.header;
  const ProxyHeader& y = b.header;
  return x.version == y.version && x.command == y.command && x.family == y.family &&
         x.source_addr == y.source_addr && x.dest_addr == y.dest_addr && x.source_port == y.source_port &&
         x.dest_port == y.dest_port && x.source_text == y.source_text && a.remaining == b.remaining;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Control ctl(data, size);
  const std::uint8_t seed = ctl.byte();
  const std::string_view input(reinterpret_cast<const char*>(data) + ctl.used(), size - ctl.used());

  const Outcome whole = parse(input, 0, false);
  const Outcome split = parse(input, seed | 1, false);
  FUZZ_CHECK(same(whole, split), "whole and split input parse differently");
  if (input.size() <= 1024) FUZZ_CHECK(same(whole, parse(input, 0, true)), "whole and byte-by-byte input parse differently");

  if (whole.status == ProxyHeaderParser::Status::done) {
    const ProxyHeader& h = whole.header;
    FUZZ_CHECK(whole.remaining.size() <= input.size(), "more remaining than input");
    const std::size_t header_len = input.size() - whole.remaining.size();
    FUZZ_CHECK(input.substr(header_len) == whole.remaining, "remaining is not the input after the header");
    FUZZ_CHECK(h.version == 1 || h.version == 2, "bad version");
    FUZZ_CHECK(h.version == 1 ? header_len <= ProxyHeaderParser::max_v1_line
                              : header_len <= 16 + ProxyHeaderParser::max_v2_block,
               "header longer than the protocol allows");
    FUZZ_CHECK(h.has_address() == !h.source_text.empty(), "source_text and family disagree");
    FUZZ_CHECK(h.command == ProxyHeader::Command::proxy || !h.has_address(), "LOCAL with an address");
    const auto eff = smtp::effective_source(h);
    FUZZ_CHECK(eff.family == ProxyHeader::Family::unspec || !eff.text.empty(), "effective source without text");
    if (h.version == 1 && h.family == ProxyHeader::Family::inet) {
      // v1 takes only canonical dotted quads: the text printed is the text received.
      const std::string_view line = input.substr(0, header_len);
      FUZZ_CHECK(line.find(" " + h.source_text + " ") != std::string_view::npos, "v1 IPv4 source not canonical");
    }
  }
  return 0;
}
