// units.tests.cpp: durations, sizes and rates, both ways.
#include "mailferry/config/units.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

using namespace mailferry::config;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

TEST_CASE("parse_duration accepts digits then one unit", "[config][units]") {
  auto [text, expected] = GENERATE(table<std::string, milliseconds>({
      {"500ms", 500ms},
      {"0s", 0ms},
      {"30s", 30s},
      {"10m", 10min},
      {"1h", 1h},
      {"5d", 120h},
      {"007s", 7s},
      {"90s", 90s},
      {"9223372036854ms", milliseconds{9223372036854}},   // the largest accepted
  }));
  CAPTURE(text);
  auto d = parse_duration(text);
  REQUIRE(d.ok());
  CHECK(*d == expected);
}

TEST_CASE("parse_duration refuses", "[config][units]") {
  constexpr std::string_view expected =
      R"( (expected digits then ms, s, m, h or d, like "500ms", "30s", "10m", "1h", "5d"))";
  auto [text, why] = GENERATE(table<std::string, std::string>({
      {"", "is empty"},
      {"-5s", "is negative"},
      {"+5s", "does not start with digits"},
      {"s", "does not start with digits"},
      {"10", "has no unit"},
      {"10 s", "has an unknown unit \" s\""},
      {" 10s", "does not start with digits"},
      {"10S", "has an unknown unit \"S\""},
      {"1.5h", "has an unknown unit \".5h\""},
      {"1h30m", "has an unknown unit \"h30m\""},
      {"10w", "has an unknown unit \"w\""},
      {"10sec", "has an unknown unit \"sec\""},
      {"9223372036855ms", "is too large"},
      {"106752d", "is too large"},
      {"99999999999999999999999s", "is too large"},
  }));
  CAPTURE(text);
  auto d = parse_duration(text);
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().message == "\"" + text + "\" " + why + std::string(expected));
}

TEST_CASE("format_duration picks the largest exact unit and reads back", "[config][units]") {
  auto [d, text] = GENERATE(table<milliseconds, std::string>({
      {0ms, "0s"},
      {1ms, "1ms"},
      {1500ms, "1500ms"},
      {30s, "30s"},
      {90s, "90s"},
      {2min, "2m"},
      {90min, "90m"},
      {1h, "1h"},
      {48h, "2d"},
      {25h, "25h"},
  }));
  CHECK(format_duration(d) == text);
  CHECK(parse_duration(text).value() == d);
}

TEST_CASE("parse_size", "[config][units]") {
  auto [text, expected] = GENERATE(table<std::string, std::uint64_t>({
      {"100", 100},
      {"100B", 100},
      {"0", 0},
      {"512KiB", 512ull << 10},
      {"25MiB", 25ull << 20},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"500KB", 500'000},
      {"500kB", 500'000},
      {"25MB", 25'000'000},
      {"1GB", 1'000'000'000},
      {"3TB", 3'000'000'000'000},
      {"18446744073709551615", 18446744073709551615ull},
  }));
  CAPTURE(text);
  auto s = parse_size(text);
  REQUIRE(s.ok());
  CHECK(*s == expected);
}

TEST_CASE("parse_size refuses", "[config][units]") {
  auto [text, why] = GENERATE(table<std::string, std::string>({
      {"", "is empty"},
      {"-1", "is negative"},
      {"MiB", "does not start with digits"},
      {"25 MiB", "has an unknown unit \" MiB\""},
      {"25mib", "has an unknown unit \"mib\""},
      {"25M", "has an unknown unit \"M\""},
      {"1.5MiB", "has an unknown unit \".5MiB\""},
      {"18446744073709551616", "is too large"},
      {"17179869184GiB", "is too large"},
  }));
  CAPTURE(text);
  auto s = parse_size(text);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message ==
        "\"" + text + "\" " + why +
            R"( (expected digits then an optional unit B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, like "25MiB"))");
}

TEST_CASE("format_size reads back", "[config][units]") {
  auto [bytes, text] = GENERATE(table<std::uint64_t, std::string>({
      {0, "0"},
      {100, "100"},
      {1024, "1KiB"},
      {25ull << 20, "25MiB"},
      {1ull << 30, "1GiB"},
      {25'000'000, "25MB"},
      {1000, "1KB"},
      {1'000'001, "1000001"},
  }));
  CHECK(format_size(bytes) == text);
  CHECK(parse_size(text).value() == bytes);
}

TEST_CASE("parse_rate", "[config][units]") {
  auto [text, count, period] = GENERATE(table<std::string, std::uint32_t, std::chrono::seconds>({
      {"100/h", 100, 1h},
      {"20/min", 20, 1min},
      {"5/s", 5, 1s},
      {"1000/d", 1000, 24h},
      {"3/hour", 3, 1h},
      {"3/day", 3, 24h},
      {"7/m", 7, 1min},
      {"50/10m", 50, 10min},
      {"4294967295/s", 4294967295u, 1s},
  }));
  CAPTURE(text);
  auto r = parse_rate(text);
  REQUIRE(r.ok());
  CHECK(r->first == count);
  CHECK(r->second == period);
}

TEST_CASE("parse_rate refuses", "[config][units]") {
  auto [text, why] = GENERATE(table<std::string, std::string>({
      {"", "is empty"},
      {"100", "has no \"/PERIOD\""},
      {"/h", "does not start with a whole number"},
      {"1.5/h", "does not start with a whole number"},
      {"-1/h", "has a negative count"},
      {"0/h", "allows nothing at all"},
      {"4294967296/s", "has too large a count"},
      {"100/week", "has an unknown period \"week\""},
      {"100/", "has an unknown period \"\""},
      {"100/H", "has an unknown period \"H\""},
      {"100/500ms", "has a period that is not a whole number of seconds"},
      {"100/0s", "has a period that is not a whole number of seconds"},
  }));
  CAPTURE(text);
  auto r = parse_rate(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message ==
        "\"" + text + "\" " + why + R"( (expected COUNT/PERIOD with a period of s, min, h or d, like "100/h" or "20/min"))");
}

TEST_CASE("format_rate reads back", "[config][units]") {
  auto [count, period, text] = GENERATE(table<std::uint32_t, std::chrono::seconds, std::string>({
      {100, 1h, "100/h"},
      {20, 1min, "20/min"},
      {5, 1s, "5/s"},
      {1000, 24h, "1000/d"},
      {50, 10min, "50/10m"},
      {9, 90s, "9/90s"},
  }));
  CHECK(format_rate(count, period) == text);
  auto back = parse_rate(text);
  REQUIRE(back.ok());
  CHECK(back->first == count);
  CHECK(back->second == period);
}
