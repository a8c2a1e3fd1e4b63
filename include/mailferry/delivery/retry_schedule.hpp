// retry_schedule.hpp: RetrySchedule, when a deferred message is tried again, and when it has been
// queued too long and bounces ([queue] retry_schedule and max_age).
// Pure arithmetic: never reads a clock (arrival and now are passed in) and never touches the spool.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "mailferry/base/time.hpp"

namespace mailferry::delivery {

class RetrySchedule {
 public:
  // `intervals` are the waits after the 1st, 2nd, … failed attempt; the last one repeats.
  // Empty intervals, a non-positive interval or a negative max_age are configuration bugs the
  // config layer rejects first: the constructor throws std::invalid_argument on them.
  RetrySchedule(std::vector<std::chrono::milliseconds> intervals, std::chrono::seconds max_age);

  // The time of the next attempt after `attempts_done` failed attempts: now plus interval number
  // attempts_done - 1 (the last interval once past the end). nullopt when that time would be later
  // than arrival + max_age: the caller bounces the message. With attempts_done == 0 the answer is
  // `now`, whatever the age: every message is tried at least once before it can bounce.
  std::optional<WallTime> next_attempt(WallTime arrival, std::uint32_t attempts_done, WallTime now) const;

  const std::vector<std::chrono::milliseconds>& intervals() const { return intervals_; }
  std::chrono::seconds max_age() const { return max_age_; }

 private:
  std::vector<std::chrono::milliseconds> intervals_;
  std::chrono::seconds max_age_;
};

}  // namespace mailferry::delivery
