// auth_throttle.tests.cpp: failed-AUTH slowing and lockout over (fake) time, and its memory bound.
#include "mailferry/auth/auth_throttle.hpp"

#include <catch2/catch.hpp>
#include <string>

using mailferry::Duration;
using mailferry::TimePoint;
using mailferry::auth::AuthThrottle;
using namespace std::chrono_literals;

namespace {

const TimePoint t0 = TimePoint{} + 1000h;   // a fixed base: no clock is read, nothing sleeps
const std::string addr = "192.0.2.7";

void fail_times(AuthThrottle& t, std::string_view a, std::size_t n, TimePoint at) {
  for (std::size_t i = 0; i < n; ++i) t.record_failure(a, at);
}

}  // namespace

TEST_CASE("auth throttle: delay and lockout by number of failures (defaults)", "[auth][auth_throttle]") {
  auto [failures, delay, locked] = GENERATE(table<std::size_t, Duration, bool>({
      {0, 0ms, false},
      {1, 0ms, false},
      {2, 0ms, false},
      {3, 1s, false},    // past free_failures: every further attempt waits at least a second
      {4, 1s, false},
      {9, 1s, false},
      {10, 1s, true},    // lockout_after
      {50, 1s, true},
  }));
  CAPTURE(failures);
  AuthThrottle t;
  fail_times(t, addr, failures, t0);
  CHECK(t.delay_before_reply(addr, t0 + 1s) == delay);
  CHECK(t.delay_before_reply(addr, t0 + 1s) >= (failures >= 3 ? Duration(1s) : Duration(0ms)));
  CHECK(t.locked_out(addr, t0 + 1s) == locked);
}

TEST_CASE("auth throttle: addresses are tracked separately", "[auth][auth_throttle]") {
  AuthThrottle t;
  fail_times(t, addr, 10, t0);
  CHECK(t.locked_out(addr, t0));
  CHECK_FALSE(t.locked_out("192.0.2.8", t0));
  CHECK(t.delay_before_reply("192.0.2.8", t0) == 0ms);
  CHECK(t.delay_before_reply("2001:db8::1", t0) == 0ms);
}

TEST_CASE("auth throttle: the lockout lasts `lockout` after the latest failure", "[auth][auth_throttle]") {
  AuthThrottle t;
  fail_times(t, addr, 10, t0);
  CHECK(t.locked_out(addr, t0 + 14min + 59s));
  CHECK_FALSE(t.locked_out(addr, t0 + 15min));
  // The count is kept: one more failure after the lockout locks out again at once.
  CHECK(t.delay_before_reply(addr, t0 + 15min) == 1s);
  t.record_failure(addr, t0 + 16min);
  CHECK(t.locked_out(addr, t0 + 16min));
  CHECK(t.locked_out(addr, t0 + 30min + 59s));
  CHECK_FALSE(t.locked_out(addr, t0 + 31min));
}

TEST_CASE("auth throttle: failures are forgotten after forget_after without one", "[auth][auth_throttle]") {
  AuthThrottle t;
  fail_times(t, addr, 10, t0);
  CHECK(t.delay_before_reply(addr, t0 + 59min) == 1s);
  CHECK(t.delay_before_reply(addr, t0 + 1h) == 0ms);
  CHECK_FALSE(t.locked_out(addr, t0 + 1h));
  // A failure after that starts a fresh count.
  t.record_failure(addr, t0 + 1h);
  CHECK(t.delay_before_reply(addr, t0 + 1h) == 0ms);
  CHECK(t.tracked() == 1);
}

TEST_CASE("auth throttle: spaced-out failures keep the count alive", "[auth][auth_throttle]") {
  AuthThrottle t;
  TimePoint now = t0;
  for (int i = 0; i < 10; ++i) {   // one failure every 50 minutes: never forgotten, still counted
    t.record_failure(addr, now);
    now += 50min;
  }
  CHECK(t.locked_out(addr, now - 50min));
}

TEST_CASE("auth throttle: a success clears the address's record", "[auth][auth_throttle]") {
  AuthThrottle t;
  fail_times(t, addr, 5, t0);
  CHECK(t.delay_before_reply(addr, t0) == 1s);
  t.record_success(addr, t0 + 1s);
  CHECK(t.delay_before_reply(addr, t0 + 1s) == 0ms);
  CHECK(t.tracked() == 0);
  t.record_success("198.51.100.1", t0);   // unknown address: nothing to clear
  CHECK(t.tracked() == 0);
}

TEST_CASE("auth throttle: a custom policy is honoured", "[auth][auth_throttle]") {
  AuthThrottle::Policy p;
  p.free_failures = 0;
  p.delay = 3s;
  p.lockout_after = 2;
  p.lockout = 1min;
  p.forget_after = 10min;
  AuthThrottle t(p);
  CHECK(t.delay_before_reply(addr, t0) == 0ms);   // nothing recorded yet
  t.record_failure(addr, t0);
  CHECK(t.delay_before_reply(addr, t0) == 3s);
  CHECK_FALSE(t.locked_out(addr, t0));
  t.record_failure(addr, t0 + 1s);
  CHECK(t.locked_out(addr, t0 + 1s));
  CHECK_FALSE(t.locked_out(addr, t0 + 1s + 1min));
  CHECK(t.delay_before_reply(addr, t0 + 1s + 10min) == 0ms);
}

TEST_CASE("auth throttle: memory is bounded; the least recently failing address goes first", "[auth][auth_throttle]") {
  AuthThrottle::Policy p;
  p.max_tracked = 3;
  AuthThrottle t(p);
  fail_times(t, "a", 10, t0);
  fail_times(t, "b", 10, t0 + 1s);
  fail_times(t, "c", 10, t0 + 2s);
  t.record_failure("a", t0 + 3s);   // "a" is now the most recent; "b" is the oldest
  t.record_failure("d", t0 + 4s);
  CHECK(t.tracked() == 3);
  CHECK(t.locked_out("a", t0 + 5s));
  CHECK_FALSE(t.locked_out("b", t0 + 5s));   // evicted
  CHECK(t.locked_out("c", t0 + 5s));
  CHECK(t.delay_before_reply("d", t0 + 5s) == 0ms);

  for (int i = 0; i < 1000; ++i) t.record_failure("x" + std::to_string(i), t0 + 6s);
  CHECK(t.tracked() == 3);
}

TEST_CASE("auth throttle: forgotten addresses are dropped as new failures arrive", "[auth][auth_throttle]") {
  AuthThrottle t;
  for (int i = 0; i < 100; ++i) t.record_failure("10.0.0." + std::to_string(i), t0);
  CHECK(t.tracked() == 100);
  t.record_failure(addr, t0 + 2h);
  CHECK(t.tracked() == 1);
}

TEST_CASE("auth throttle: a moved-from throttle's state lives on in the new one", "[auth][auth_throttle]") {
  AuthThrottle a;
  fail_times(a, addr, 10, t0);
  AuthThrottle b(std::move(a));
  CHECK(b.locked_out(addr, t0));
  b.record_success(addr, t0);
  CHECK_FALSE(b.locked_out(addr, t0));
}
