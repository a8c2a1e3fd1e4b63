// group_sync.hpp: GroupSync, group commit for one fsync that many threads need (the spool's
// queue/ directory after each rename into or out of it). Callers that arrive while a sync is
// running wait for the next one, which then covers all of them: under load one fsync makes many
// renames durable, and a lone caller pays exactly one fsync, as before.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

namespace mailferry::spool {

class GroupSync {
 public:
  // `sync` does the actual fsync and returns 0 or an errno; it is never run twice at once.
  explicit GroupSync(std::function<int()> sync) : sync_(std::move(sync)) {}

  // Returns once a sync that began after this call has finished: whatever the caller changed
  // before calling is then as durable as that sync makes it. The result is that sync's errno
  // (0 = ok); every caller a failed sync covered gets its error.
  int sync();

 private:
  struct Failure {
    std::uint64_t first, last;   // the tickets the failed sync covered
    int err;
  };

  std::function<int()> sync_;
  std::mutex mutex_;
  std::condition_variable done_changed_;
  std::uint64_t requested_ = 0;   // tickets handed out
  std::uint64_t done_ = 0;        // every ticket up to this one is covered by a finished sync
  bool running_ = false;
  // Recent failures, for callers that wake after another sync has finished too. Bounded: a caller
  // is woken within microseconds, long before 64 more syncs can fail.
  std::deque<Failure> failures_;
};

}  // namespace mailferry::spool
