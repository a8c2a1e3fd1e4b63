// group_sync.cpp: see group_sync.hpp.
#include "mailferry/spool/group_sync.hpp"

namespace mailferry::spool {

int GroupSync::sync() {
  std::unique_lock lock(mutex_);
  const std::uint64_t ticket = ++requested_;
  while (done_ < ticket) {
    if (running_) {
      // The running sync may have begun before this caller's change: wait for the next one.
      done_changed_.wait(lock);
      continue;
    }
    // Lead a sync for every ticket handed out so far: their changes all happened before it starts.
    running_ = true;
    const std::uint64_t first = done_ + 1;
    const std::uint64_t last = requested_;
    lock.unlock();
    const int err = sync_();
    lock.lock();
    running_ = false;
    done_ = last;
    if (err != 0) {
      failures_.push_back(Failure{first, last, err});
      if (failures_.size() > 64) failures_.pop_front();
    }
    done_changed_.notify_all();
  }
  for (const auto& f : failures_) {
    if (ticket >= f.first && ticket <= f.last) return f.err;
  }
  return 0;
}

}  // namespace mailferry::spool
