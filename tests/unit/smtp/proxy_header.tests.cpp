// ProxyHeaderParser: every header fed whole, byte by byte, split at every position and with trailing
// bytes; every proper prefix of a valid header stays need_more; invalid input is refused at the first
// byte that decides it.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "mailferry/smtp/proxy_header.hpp"

using namespace mailferry::smtp;
using Status = ProxyHeaderParser::Status;

namespace {

const std::string v2_sig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string be16(std::size_t v) {
  return {static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}

// A v2 header: signature, version/command byte, family/protocol byte, length, block.
std::string v2(unsigned ver_cmd, unsigned fam, const std::string& block) {
  return v2_sig + static_cast<char>(ver_cmd) + static_cast<char>(fam) + be16(block.size()) + block;
}

std::string bytes(std::initializer_list<unsigned> list) {
  std::string s;
  for (unsigned b : list) s += static_cast<char>(b);
  return s;
}

const std::string v4_block = bytes({192, 0, 2, 1, 198, 51, 100, 7}) + be16(56324) + be16(25);
const std::string v6_block = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  //
                                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}) +
                             be16(1) + be16(587);

std::string hex(const std::uint8_t* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 0xF];
  }
  return s;
}

std::string describe(const ProxyHeader& h) {
  std::string s = "v" + std::to_string(h.version) + (h.command == ProxyHeader::Command::local ? " local" : " proxy");
  if (h.family == ProxyHeader::Family::unspec) return s + " unspec";
  const std::size_t n = h.family == ProxyHeader::Family::inet ? 4 : 16;
  s += h.family == ProxyHeader::Family::inet ? " inet " : " inet6 ";
  return s + h.source_text + " " + std::to_string(h.source_port) + " " + hex(h.dest_addr.data(), n) + " " +
         std::to_string(h.dest_port);
}

struct Outcome {
  std::string result;  // "need_more", "invalid", or "done: <header>"
  std::string rest;
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

Outcome run(const std::vector<std::string>& chunks) {
  ProxyHeaderParser p;
  Status s = Status::need_more;
  for (const std::string& c : chunks) s = p.feed(c);
  CHECK(s == p.status());
  const auto rest = p.remaining();
  switch (s) {
    case Status::need_more:
      CHECK(rest.empty());
      return {"need_more", {}};
    case Status::invalid:
      CHECK_FALSE(p.error().empty());
      return {"invalid", {}};
    case Status::done:
      CHECK(p.error().empty());
      return {"done: " + describe(p.header()), std::string(rest.begin(), rest.end())};
  }
  return {};
}

// The outcome for `input`, after checking that byte-by-byte and every two-way split agree with it.
Outcome three_ways(const std::string& input) {
  const Outcome whole = run({input});
  std::vector<std::string> singles;
  for (char c : input) singles.emplace_back(1, c);
  REQUIRE(run(singles) == whole);
  for (std::size_t k = 0; k <= input.size(); ++k) {
    CAPTURE(k);
    REQUIRE(run({input.substr(0, k), input.substr(k)}) == whole);
  }
  return whole;
}

const std::string max_v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

}  // namespace

TEST_CASE("valid headers: fed whole, byte by byte, split, with trailing bytes", "[smtp][proxy]") {
  auto [header, expected] = GENERATE_REF(table<std::string, std::string>({
      {"PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n", "v1 proxy inet 192.0.2.1 56324 c6336407 25"},
      {"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", "v1 proxy inet 0.0.0.0 0 ffffffff 65535"},
      {"PROXY TCP6 2001:db8::1 2001:db8::2 1 587\r\n",
       "v1 proxy inet6 2001:db8::1 1 20010db8000000000000000000000002 587"},
      {"PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 65535 0\r\n",
       "v1 proxy inet6 2001:db8::1 65535 00000000000000000000000000000001 0"},
      {"PROXY TCP6 ::ffff:192.0.2.1 ::ffff:10.0.0.1 1000 25\r\n",
       "v1 proxy inet6 ::ffff:192.0.2.1 1000 00000000000000000000ffff0a000001 25"},
      // The longest TCP6 line the spec describes (104 bytes).
      {"PROXY TCP6 " + max_v6 + " " + max_v6 + " 65535 65535\r\n",
       "v1 proxy inet6 " + max_v6 + " 65535 ffffffffffffffffffffffffffffffff 65535"},
      {"PROXY UNKNOWN\r\n", "v1 proxy unspec"},
      // The worst case of the spec: exactly 107 bytes; what follows UNKNOWN is ignored.
      {"PROXY UNKNOWN " + max_v6 + " " + max_v6 + " 65535 65535\r\n", "v1 proxy unspec"},
      {"PROXY UNKNOWN whatever\r\n", "v1 proxy unspec"},
      {v2(0x21, 0x11, v4_block), "v2 proxy inet 192.0.2.1 56324 c6336407 25"},
      {v2(0x21, 0x21, v6_block), "v2 proxy inet6 2001:db8::1 1 20010db8000000000000000000000002 587"},
      {v2(0x20, 0x00, ""), "v2 local unspec"},
      // LOCAL: the block is skipped and the family ignored, whatever they say.
      {v2(0x20, 0x11, v4_block), "v2 local unspec"},
      {v2(0x20, 0xFF, std::string(40, 'x')), "v2 local unspec"},
      {v2(0x21, 0x00, std::string(20, '\0')), "v2 proxy unspec"},
      // TLVs (ALPN "smtp", NOOP with an empty value, a vendor type) after the addresses are skipped.
      {v2(0x21, 0x11, v4_block + "\x01" + be16(4) + "smtp" + "\x04" + be16(0) + "\xEA" + be16(3) + "abc"),
       "v2 proxy inet 192.0.2.1 56324 c6336407 25"},
      {v2(0x21, 0x21, v6_block + "\x04" + be16(536 - 36 - 3) + std::string(536 - 36 - 3, '\0')),
       "v2 proxy inet6 2001:db8::1 1 20010db8000000000000000000000002 587"},
  }));
  CAPTURE(header);
  REQUIRE(header.size() <= 16 + ProxyHeaderParser::max_v2_block);

  const auto trailing = GENERATE(as<std::string>{}, "", "EHLO client.example\r\n", "\r\n",
                                 std::string("\x16\x03\x01\x02\x00\x01\x00", 7), "PROXY TCP4 again\r\n");
  CAPTURE(trailing);
  const Outcome got = three_ways(header + trailing);
  CHECK(got.result == "done: " + expected);
  CHECK(got.rest == trailing);

  // Truncated anywhere, the header is still awaited, never refused and never reported done.
  for (std::size_t k = 0; k < header.size(); ++k) {
    CAPTURE(k);
    REQUIRE(run({header.substr(0, k)}).result == "need_more");
  }
}

TEST_CASE("the 107-byte bound of v1 is exact", "[smtp][proxy]") {
  const std::string at_limit = "PROXY UNKNOWN " + std::string(91, 'a') + "\r\n";
  REQUIRE(at_limit.size() == 107);
  CHECK(three_ways(at_limit).result == "done: v1 proxy unspec");
  CHECK(three_ways("PROXY UNKNOWN " + std::string(92, 'a') + "\r\n").result == "invalid");
  // No CRLF in sight: the 106th byte must be the CR of a 107-byte line, so a line is refused there,
  // without waiting for more.
  const std::string endless = "PROXY UNKNOWN " + std::string(200, 'a');
  CHECK(run({endless.substr(0, 105)}).result == "need_more");
  CHECK(run({endless.substr(0, 106)}).result == "invalid");
}

TEST_CASE("invalid input is refused as soon as it is decided", "[smtp][proxy]") {
  // `decided` is the length of the shortest prefix that is already invalid.
  auto [input, decided] = GENERATE_REF(table<std::string, std::size_t>({
      {"EHLO x\r\n", 1},
      {"HELO x\r\n", 1},
      {"GET / HTTP/1.0\r\n\r\n", 1},
      {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 1},
      {std::string(1, '\0'), 1},
      {"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", 1},
      {"PROXYTCP4\r\n", 6},
      {"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n", 7},
      {"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n", 7},
      {"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", 10},
      {"PROXY UNKNOWNX\r\n", 14},
      {"PROXY\r\n", 6},
      {"PROXY \r\n", 7},
      {"PROXY UNKN\r\n", 11},
      {"PROXY TCP4\r\n", 11},
      {"PROXY TCP6\r\n", 11},
      {"PROXY TCP4 192.0.2.1 198.51.100.7\r\n", 34},  // too few fields, known at the CR
      {"PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n", 36},
      {"PROXY TCP4 1.2.3.4x 1.2.3.4 1 2\r\n", 19},
      {"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", 20},
      {"PROXY TCP4 ::1 ::1 1 2\r\n", 12},
      {"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", 31},
      {"PROXY UNKNOWN\rX\r\n", 15},
      {"PROXY UNKNOWN\n", 14},
      {"PROXY UNKNOWN\r\r\n", 15},
      {"\r\n\r\n\n", 5},
      {v2_sig.substr(0, 7) + "X" + v2_sig.substr(8) + "\x21\x11" + be16(12) + v4_block, 8},
      {v2(0x11, 0x11, v4_block), 13},  // version 1 in binary form
      {v2(0x31, 0x11, v4_block), 13},  // version 3
      {v2(0x22, 0x11, v4_block), 13},  // command 2
      {v2(0x2F, 0x11, v4_block), 13},
      {v2(0x21, 0x41, v4_block), 14},  // family 4
      {v2(0x21, 0x13, v4_block), 14},  // protocol 3
      {v2(0x21, 0x10, v4_block), 14},  // AF_INET with an unspecified transport
      {v2(0x21, 0x12, v4_block), 14},  // UDP cannot carry SMTP
      {v2(0x21, 0x22, v6_block), 14},
      {v2(0x21, 0x31, std::string(216, '\0')), 14},  // AF_UNIX stream
      {v2(0x21, 0x32, std::string(216, '\0')), 14},
      {v2(0x21, 0x11, std::string(537, '\0')), 16},  // block over the bound
      {v2(0x20, 0x00, std::string(65535, '\0')), 16},
      {v2(0x21, 0x11, v4_block.substr(0, 11)), 16},  // too short for two IPv4 addresses and ports
      {v2(0x21, 0x21, v6_block.substr(0, 35)), 16},
      {v2(0x21, 0x11, v4_block + "\x01" + be16(5) + "smtp"), 16 + 12 + 7},  // TLV overruns the block
      {v2(0x21, 0x11, v4_block + "\x01" + be16(4) + "smtp" + std::string("\x04\x00", 2)), 16 + 12 + 9},  // truncated TLV
  }));
  CAPTURE(input, decided);
  REQUIRE(decided <= input.size());
  CHECK(three_ways(input).result == "invalid");
  CHECK(run({input.substr(0, decided)}).result == "invalid");
  CHECK(run({input.substr(0, decided - 1)}).result == "need_more");
}

TEST_CASE("v1 lines invalid only once complete", "[smtp][proxy]") {
  // Each of these could still have been valid until its CRLF arrived.
  const auto line = GENERATE(as<std::string>{},
      "PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n",  // heading zero in an octet
      "PROXY TCP4 256.0.0.1 198.51.100.7 1 2\r\n",
      "PROXY TCP4 1.2.3 198.51.100.7 1 2\r\n",
      "PROXY TCP4 1.2.3.4.5 198.51.100.7 1 2\r\n",
      "PROXY TCP4 1..3.4 198.51.100.7 1 2\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.7 025 25\r\n",  // heading zero in a port
      "PROXY TCP4 192.0.2.1 198.51.100.7 65536 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.7 100000 25\r\n",
      "PROXY TCP6 192.0.2.1 198.51.100.7 1 2\r\n",  // the family dictates the format
      "PROXY TCP6 2001:db8:::1 ::1 1 2\r\n",
      "PROXY TCP6 2001:db8::1::2 ::1 1 2\r\n",
      "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
      "PROXY TCP6 12345::1 ::1 1 2\r\n",
      "PROXY TCP6 ::ffff:192.0.2.01 ::1 1 2\r\n");
  CAPTURE(line);
  CHECK(three_ways(line).result == "invalid");
  CHECK(run({line.substr(0, line.size() - 1)}).result == "need_more");
}

TEST_CASE("empty and partial input waits", "[smtp][proxy]") {
  for (const std::string& input : {std::string(), std::string("P"), std::string("PROXY"), std::string("PROXY TCP6 ::"),
                                  std::string("\r"), std::string("\r\n\r\n"), v2_sig, v2_sig + "\x21\x11"}) {
    CAPTURE(input);
    CHECK(run({input}).result == "need_more");
  }
  ProxyHeaderParser p;
  CHECK(p.feed({}) == Status::need_more);
  CHECK(p.error().empty());
}

TEST_CASE("status is sticky; bytes after done join remaining()", "[smtp][proxy]") {
  ProxyHeaderParser p;
  const std::string a = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\nEH";
  REQUIRE(p.feed(a) == Status::done);
  REQUIRE(p.feed(std::string("LO x\r\n")) == Status::done);
  CHECK(std::string(p.remaining().begin(), p.remaining().end()) == "EHLO x\r\n");
  CHECK(p.header().source_text == "192.0.2.1");

  ProxyHeaderParser q;
  REQUIRE(q.feed(std::string("EHLO x\r\n")) == Status::invalid);
  const std::string why = q.error();
  CHECK(q.feed(std::string("PROXY UNKNOWN\r\n")) == Status::invalid);
  CHECK(q.error() == why);
  CHECK(q.remaining().empty());
}

TEST_CASE("effective source: IPv4-mapped IPv6 becomes IPv4", "[smtp][proxy]") {
  const auto source_of = [](const std::string& input) {
    ProxyHeaderParser p;
    REQUIRE(p.feed(input) == Status::done);
    return effective_source(p.header());
  };
  const EffectiveSource mapped = source_of("PROXY TCP6 ::ffff:192.0.2.1 ::1 1000 25\r\n");
  CHECK(mapped.family == ProxyHeader::Family::inet);
  CHECK(mapped.text == "192.0.2.1");
  CHECK(hex(mapped.addr.data(), 16) == "c0000201000000000000000000000000");

  const auto v2_mapped = source_of(v2(0x21, 0x21,
                                      bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 1, 2, 3}) +
                                          std::string(16, '\0') + be16(1) + be16(2)));
  CHECK(v2_mapped.family == ProxyHeader::Family::inet);
  CHECK(v2_mapped.text == "10.1.2.3");

  const EffectiveSource v6 = source_of("PROXY TCP6 2001:db8::1 ::1 1000 25\r\n");
  CHECK(v6.family == ProxyHeader::Family::inet6);
  CHECK(v6.text == "2001:db8::1");

  // ::192.0.2.1 (IPv4-compatible, deprecated) and ::ffff:0:… (SIIT) are not the mapped form.
  CHECK(source_of("PROXY TCP6 ::192.0.2.1 ::1 1 2\r\n").family == ProxyHeader::Family::inet6);

  const EffectiveSource v4 = source_of("PROXY TCP4 192.0.2.9 192.0.2.1 1 2\r\n");
  CHECK(v4.family == ProxyHeader::Family::inet);
  CHECK(v4.text == "192.0.2.9");

  const EffectiveSource none = source_of("PROXY UNKNOWN\r\n");
  CHECK(none.family == ProxyHeader::Family::unspec);
  CHECK(none.text.empty());
}
