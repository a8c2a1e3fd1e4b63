// address.tests.cpp: RFC 5321 paths as parse_path sees them, including what fuzzing found.
#include <catch2/catch.hpp>

#include <string>

#include "mailferry/smtp/address.hpp"

using namespace mailferry::smtp;

TEST_CASE("paths real clients send are parsed", "[smtp][address]") {
  auto [text, address, rest] = GENERATE(table<std::string, std::string, std::string>({
      {"<a@example.org>", "a@example.org", ""},
      {"<> SIZE=10", "", " SIZE=10"},
      {"<first.last+tag@example.org> BODY=8BITMIME", "first.last+tag@example.org", " BODY=8BITMIME"},
      {"<\"john doe\"@example.org>", "\"john doe\"@example.org", ""},
      {"<\"a\\\"b\"@example.org>", "\"a\\\"b\"@example.org", ""},
      {"<@relay.example:a@example.org>", "a@example.org", ""},   // a source route is dropped
      {"<a@[192.0.2.1]>", "a@[192.0.2.1]", ""},
  }));
  CAPTURE(text);
  const auto p = parse_path(text, false, 256);
  REQUIRE(p);
  CHECK(p->address == address);
  CHECK(p->rest == rest);
}

TEST_CASE("malformed and unsendable paths are refused", "[smtp][address]") {
  const std::string text = GENERATE(as<std::string>{},
      "a@example.org", "<a@example.org", "<a b@example.org>", "<a..b@example.org>", "<.a@example.org>",
      "<a@>", "<@example.org>", "<a@exa mple.org>", "<\"a\nb\"@example.org>",
      // Fuzzing: an escaped 8-bit byte in a quoted local part without SMTPUTF8 (RFC 5321 allows
      // only printable ASCII in quoted-pairSMTP).
      "<\"\\\x9d\"@g>",
      // Fuzzing: quoted '<' or '>' are valid RFC 5321 but cannot be sent upstream unambiguously;
      // refused at submission rather than bounced later.
      "<\"a>b\"@example.org>", "<\"x<y\"@example.org>", "<\"x\\>y\"@example.org>");
  CAPTURE(text);
  CHECK_FALSE(parse_path(text, false, 256));
}

TEST_CASE("8-bit addresses need SMTPUTF8", "[smtp][address]") {
  const std::string text = "<j\xc3\xb6rg@example.org>";
  CHECK_FALSE(parse_path(text, false, 256));
  CHECK(parse_path(text, true, 256));
  const std::string quoted = "<\"\\\xc3\xb6\"@example.org>";
  CHECK_FALSE(parse_path(quoted, false, 256));
}

TEST_CASE("a path over max_path is refused", "[smtp][address]") {
  const std::string local(70, 'a');
  CHECK(parse_path("<" + local + "@example.org>", false, 256));
  CHECK_FALSE(parse_path("<" + local + "@example.org>", false, 40));
}
