// retry_schedule.tests.cpp: RetrySchedule — interval per attempt, the last one repeating, max_age.
#include "mailferry/delivery/retry_schedule.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <stdexcept>

using mailferry::WallTime;
using mailferry::delivery::RetrySchedule;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

const WallTime arrival = WallTime(std::chrono::seconds(1700000000));

// The SPEC's example: ["30s", "2m", "10m", "30m", "1h"], max_age "5d".
RetrySchedule spec_schedule() { return RetrySchedule({30s, 2min, 10min, 30min, 1h}, std::chrono::days(5)); }

}  // namespace

TEST_CASE("retry schedule: interval by number of failed attempts, last repeats", "[delivery][retry_schedule]") {
  const RetrySchedule schedule = spec_schedule();
  const WallTime now = arrival + 1h;
  auto [attempts, wait] = GENERATE(table<std::uint32_t, milliseconds>({
      {0, 0ms},     // never tried: now
      {1, 30s},
      {2, 2min},
      {3, 10min},
      {4, 30min},
      {5, 1h},
      {6, 1h},      // the last interval repeats
      {7, 1h},
      {100, 1h},
      {4294967295U, 1h},
  }));
  CAPTURE(attempts);
  const auto next = schedule.next_attempt(arrival, attempts, now);
  REQUIRE(next.has_value());
  CHECK(*next - now == wait);
}

TEST_CASE("retry schedule: past max_age the message bounces", "[delivery][retry_schedule]") {
  const RetrySchedule schedule = spec_schedule();
  const WallTime deadline = arrival + std::chrono::days(5);
  auto [now, attempts, expect] = GENERATE_COPY(table<WallTime, std::uint32_t, bool>({
      {deadline - 1h - 1s, 9, true},   // next at deadline - 1s
      {deadline - 1h, 9, true},        // next exactly at the deadline: still allowed
      {deadline - 1h + 1ms, 9, false}, // one millisecond past it
      {deadline - 30s, 1, true},
      {deadline - 29s, 1, false},
      {deadline + 1h, 9, false},
      {deadline + std::chrono::days(30), 0, true},   // never tried: try once before bouncing
  }));
  CAPTURE(attempts, (now - deadline).count());
  CHECK(schedule.next_attempt(arrival, attempts, now).has_value() == expect);
}

TEST_CASE("retry schedule: a single interval repeats from the first failure", "[delivery][retry_schedule]") {
  const RetrySchedule schedule({10min}, std::chrono::hours(1));
  CHECK(*schedule.next_attempt(arrival, 1, arrival) == arrival + 10min);
  CHECK(*schedule.next_attempt(arrival, 6, arrival + 50min) == arrival + 1h);
  CHECK_FALSE(schedule.next_attempt(arrival, 7, arrival + 50min + 1s).has_value());
}

TEST_CASE("retry schedule: zero max_age bounces after the first failure", "[delivery][retry_schedule]") {
  const RetrySchedule schedule({1s}, std::chrono::seconds(0));
  CHECK(schedule.next_attempt(arrival, 0, arrival) == arrival);
  CHECK_FALSE(schedule.next_attempt(arrival, 1, arrival).has_value());
}

TEST_CASE("retry schedule: configuration bugs are refused", "[delivery][retry_schedule]") {
  CHECK_THROWS_AS(RetrySchedule({}, std::chrono::hours(1)), std::invalid_argument);
  CHECK_THROWS_AS(RetrySchedule({1s, 0s}, std::chrono::hours(1)), std::invalid_argument);
  CHECK_THROWS_AS(RetrySchedule({-1s}, std::chrono::hours(1)), std::invalid_argument);
  CHECK_THROWS_AS(RetrySchedule({1s}, std::chrono::seconds(-1)), std::invalid_argument);
  const RetrySchedule ok({500ms}, std::chrono::seconds(60));
  CHECK(ok.intervals() == std::vector<milliseconds>{500ms});
  CHECK(ok.max_age() == std::chrono::seconds(60));
}
