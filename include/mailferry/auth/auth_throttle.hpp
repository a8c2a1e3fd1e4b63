// auth_throttle.hpp: slowing, then refusing, client addresses that keep failing AUTH (SPEC
// "Submission": "an address that keeps failing AUTH is slowed (each further attempt waits at least
// a second) and then refused for a while").
// Pure bookkeeping: never reads the clock (`now` comes in), never sleeps, never closes anything —
// the shell asks locked_out() before verifying, and waits delay_before_reply() before answering.
// Not thread-safe: it belongs to the I/O loop, like the sessions that feed it.
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include "mailferry/base/time.hpp"

namespace mailferry::auth {

struct AuthThrottlePolicy {
  std::size_t free_failures = 3;                 // failures answered without delay (typos happen)
  Duration delay = std::chrono::seconds(1);      // wait before each reply once past free_failures
  std::size_t lockout_after = 10;                // failures that lock the address out…
  Duration lockout = std::chrono::minutes(15);   // …for this long after its latest failure
  Duration forget_after = std::chrono::hours(1); // no failure for this long: the address starts afresh
                                                 // (keep it above `lockout`, which it would cut short)
  std::size_t max_tracked = 10000;               // addresses remembered; the least recently failing go first
};

class AuthThrottle {
 public:
  using Policy = AuthThrottlePolicy;

  explicit AuthThrottle(Policy policy = {});
  // The index points into the list's nodes: a copy would point into the original. A move keeps the
  // nodes, so it is fine.
  AuthThrottle(const AuthThrottle&) = delete;
  AuthThrottle& operator=(const AuthThrottle&) = delete;
  AuthThrottle(AuthThrottle&&) = default;
  AuthThrottle& operator=(AuthThrottle&&) = default;

  // How long to hold the reply to this address's next AUTH attempt: zero while it has failed fewer
  // than free_failures times (within forget_after), `delay` from then on. Applied to every reply,
  // success included, so the wait says nothing about whether the password was right.
  Duration delay_before_reply(std::string_view addr, TimePoint now) const;
  // True once the address has failed lockout_after times, until `lockout` has passed since its
  // latest failure. The failure count is kept (until forget_after), so a locked-out address that
  // fails again after the lockout is locked out again at once: one guess per `lockout`.
  bool locked_out(std::string_view addr, TimePoint now) const;

  void record_failure(std::string_view addr, TimePoint now);
  // A correct password clears the address's record: a user who mistyped twice starts afresh.
  void record_success(std::string_view addr, TimePoint now);

  // Addresses remembered now (expired ones may still count until the next record_failure).
  std::size_t tracked() const { return order_.size(); }

 private:
  struct Entry {
    std::string addr;
    std::size_t failures = 0;
    TimePoint last_failure;
  };
  // The address's entry if its failures still count at `now`, else nullptr.
  const Entry* live_entry(std::string_view addr, TimePoint now) const;
  void drop_forgotten(TimePoint now);

  Policy policy_;
  // Least recently failing first. The index's keys view the strings inside the list's nodes,
  // which never move, so each address is stored once.
  std::list<Entry> order_;
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
};

}  // namespace mailferry::auth
