// ReplyParser: every input fed whole, byte by byte, split at every position, and with trailing bytes.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mailferry/smtp/reply_parser.hpp"

using namespace mailferry::smtp;

namespace {

// Everything the parser yields for `chunks`, as "code|enhanced|line1/line2" strings, then "error: …"
// if it failed.
std::vector<std::string> parse(const std::vector<std::string>& chunks, std::size_t max_line = 64,
                               std::size_t max_lines = 5) {
  ReplyParser p(max_line, max_lines);
  std::vector<std::string> out;
  for (const std::string& c : chunks) {
    p.feed(c);
    for (;;) {
      auto r = p.next();
      if (!r) {
        out.push_back("error: " + r.error().message);
        return out;
      }
      if (!r->has_value()) break;
      const Reply& reply = **r;
      std::string s = std::to_string(reply.code) + "|" + reply.enhanced + "|";
      for (std::size_t i = 0; i < reply.lines.size(); ++i) s += (i ? "/" : "") + reply.lines[i];
      out.push_back(s);
    }
  }
  return out;
}

std::vector<std::string> three_ways(const std::string& input, std::size_t max_line = 64, std::size_t max_lines = 5) {
  const auto whole = parse({input}, max_line, max_lines);
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  REQUIRE(parse(bytes, max_line, max_lines) == whole);
  for (std::size_t k = 0; k <= input.size(); ++k) {
    CAPTURE(k);
    REQUIRE(parse({input.substr(0, k), input.substr(k)}, max_line, max_lines) == whole);
  }
  return whole;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("replies: single, multi-line, enhanced codes", "[smtp][reply_parser]") {
  auto [input, expected] = GENERATE(table<std::string, V>({
      {"220 mx.example.org ESMTP\r\n", {"220||mx.example.org ESMTP"}},
      {"250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", {"250||mx/PIPELINING/SIZE 1000"}},
      {"250 2.1.0 Ok\r\n", {"250|2.1.0|Ok"}},
      {"550-5.1.1 No such\r\n550 5.1.1 user\r\n", {"550|5.1.1|No such/user"}},
      {"550 5.1.10 x\r\n", {"550|5.1.10|x"}},
      {"250 2.0.0\r\n", {"250|2.0.0|"}},
      {"250 5.0.0 class must match the reply\r\n", {"250||5.0.0 class must match the reply"}},
      {"250 2.0.0.1 not a code\r\n", {"250||2.0.0.1 not a code"}},
      {"250 2.1000.0 too many digits\r\n", {"250||2.1000.0 too many digits"}},
      {"250 2.0.0x\r\n", {"250||2.0.0x"}},
      {"250\r\n", {"250||"}},
      {"250-\r\n250 last\r\n", {"250||/last"}},
      {"354 go\n250 bare LF\n", {"354||go", "250||bare LF"}},
      {"221 bye\r\n221 again\r\n", {"221||bye", "221||again"}},
      {"250 tab\tand\x01 control\x7f\r\n", {"250||tab\tand? control?"}},
      {"250 stray\rCR\r\n", {"250||stray?CR"}},
      {"250 ok\r\n250-partial\r\n", {"250||ok"}},
      {"", {}},
  }));
  CAPTURE(input);
  CHECK(three_ways(input) == expected);
}

TEST_CASE("malformed replies are sticky protocol errors", "[smtp][reply_parser]") {
  auto [input, expected] = GENERATE(table<std::string, V>({
      {"hello\r\n", {"error: malformed reply line \"hello\""}},
      {"25\r\n", {"error: malformed reply line \"25\""}},
      {"2x0 ok\r\n", {"error: malformed reply line \"2x0 ok\""}},
      {"250ok\r\n", {"error: malformed reply line \"250ok\""}},
      {"150 one\r\n", {"error: malformed reply line \"150 one\""}},
      {"650 six\r\n", {"error: malformed reply line \"650 six\""}},
      {"\r\n", {"error: malformed reply line \"\""}},
      {"250 ok\r\nbad\r\n250 never\r\n", {"250||ok", "error: malformed reply line \"bad\""}},
      {"250-a\r\n251 b\r\n", {"error: reply code changed from 250 to 251 within one reply"}},
      {"250-1\r\n250-2\r\n250-3\r\n250-4\r\n250-5\r\n250 6\r\n", {"error: reply longer than 5 lines"}},
      {"250 " + std::string(61, 'x') + "\r\n", {"error: reply line longer than 64 bytes"}},
      {"250 " + std::string(200, 'x'), {"error: reply line longer than 64 bytes"}},   // never ends
  }));
  CAPTURE(input);
  CHECK(three_ways(input) == expected);
}

TEST_CASE("line length bound: exactly at the limit is fine, with CRLF or LF", "[smtp][reply_parser]") {
  CHECK(three_ways("250 " + std::string(60, 'x') + "\r\n") == V{"250||" + std::string(60, 'x')});
  CHECK(three_ways("250 " + std::string(60, 'x') + "\n") == V{"250||" + std::string(60, 'x')});
  CHECK(three_ways("250-1\r\n250-2\r\n250-3\r\n250-4\r\n250 5\r\n") == V{"250||1/2/3/4/5"});
}

TEST_CASE("after an error the parser stays failed", "[smtp][reply_parser]") {
  ReplyParser p(64, 5);
  p.feed("bad\r\n");
  auto first = p.next();
  REQUIRE_FALSE(first);
  CHECK(p.failed());
  p.feed("250 ok\r\n");
  auto again = p.next();
  REQUIRE_FALSE(again);
  CHECK(again.error().message == first.error().message);
  CHECK(p.buffered() == 0);
}

TEST_CASE("buffered() reports bytes not yet part of a reply", "[smtp][reply_parser]") {
  ReplyParser p;
  p.feed("250 ok\r\n250-par");
  auto r = p.next();
  REQUIRE(r);
  REQUIRE(r->has_value());
  CHECK(p.buffered() == 7);
  r = p.next();
  REQUIRE(r);
  CHECK_FALSE(r->has_value());
  CHECK(p.buffered() == 7);
}
