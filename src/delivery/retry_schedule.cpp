// retry_schedule.cpp: RetrySchedule arithmetic.
#include "mailferry/delivery/retry_schedule.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace mailferry::delivery {

RetrySchedule::RetrySchedule(std::vector<std::chrono::milliseconds> intervals, std::chrono::seconds max_age)
    : intervals_(std::move(intervals)), max_age_(max_age) {
  if (intervals_.empty()) throw std::invalid_argument("retry schedule needs at least one interval");
  // A zero interval would retry in a tight loop against the upstream.
  if (std::any_of(intervals_.begin(), intervals_.end(), [](auto i) { return i <= i.zero(); })) {
    throw std::invalid_argument("retry intervals must be positive");
  }
  if (max_age_ < max_age_.zero()) throw std::invalid_argument("max_age must not be negative");
}

std::optional<WallTime> RetrySchedule::next_attempt(WallTime arrival, std::uint32_t attempts_done,
                                                    WallTime now) const {
  // Never tried (a fresh message, or one queued while the daemon was down for longer than
  // max_age): try now. Bouncing mail that was never attempted would turn an outage into bounces.
  if (attempts_done == 0) return now;
  const std::size_t index = std::min<std::size_t>(attempts_done - 1, intervals_.size() - 1);
  const WallTime next = now + intervals_[index];
  if (next > arrival + max_age_) return std::nullopt;
  return next;
}

}  // namespace mailferry::delivery
