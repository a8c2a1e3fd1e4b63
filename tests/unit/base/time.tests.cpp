// format_utc: the one spelling of a wall time in logs, status and queue listings.
#include <catch2/catch.hpp>

#include "mailferry/base/time.hpp"

using namespace mailferry;

TEST_CASE("format_utc writes RFC 3339 in UTC, with milliseconds on request", "[base][time]") {
  const WallTime t = WallTime{} + std::chrono::seconds(1795444701) + std::chrono::milliseconds(7);
  CHECK(format_utc(t) == "2026-11-23T14:38:21Z");
  CHECK(format_utc(t, true) == "2026-11-23T14:38:21.007Z");
  CHECK(format_utc(WallTime{}) == "1970-01-01T00:00:00Z");
}
