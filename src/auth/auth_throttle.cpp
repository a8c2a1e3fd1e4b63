// auth_throttle.cpp: failed-AUTH bookkeeping per client address, bounded in memory.
#include "mailferry/auth/auth_throttle.hpp"

namespace mailferry::auth {

AuthThrottle::AuthThrottle(Policy policy) : policy_(policy) {}

const AuthThrottle::Entry* AuthThrottle::live_entry(std::string_view addr, TimePoint now) const {
  const auto it = index_.find(addr);
  if (it == index_.end()) return nullptr;
  const Entry& e = *it->second;
  if (now - e.last_failure >= policy_.forget_after) return nullptr;
  return &e;
}

Duration AuthThrottle::delay_before_reply(std::string_view addr, TimePoint now) const {
  const Entry* e = live_entry(addr, now);
  if (e == nullptr || e->failures < policy_.free_failures) return Duration::zero();
  return policy_.delay;
}

bool AuthThrottle::locked_out(std::string_view addr, TimePoint now) const {
  const Entry* e = live_entry(addr, now);
  return e != nullptr && e->failures >= policy_.lockout_after && now - e->last_failure < policy_.lockout;
}

void AuthThrottle::drop_forgotten(TimePoint now) {
  // The list is ordered by last failure, so the forgotten entries are all at its front.
  while (!order_.empty() && now - order_.front().last_failure >= policy_.forget_after) {
    index_.erase(order_.front().addr);
    order_.pop_front();
  }
}

void AuthThrottle::record_failure(std::string_view addr, TimePoint now) {
  drop_forgotten(now);
  if (const auto it = index_.find(addr); it != index_.end()) {
    // Still remembered (drop_forgotten removed it otherwise): one more failure, now the most recent.
    it->second->failures += 1;
    it->second->last_failure = now;
    order_.splice(order_.end(), order_, it->second);
    return;
  }
  if (policy_.max_tracked == 0) return;
  // Over the bound the least recently failing address goes. An attacker with many addresses can
  // push a victim address out this way, but only by failing max_tracked times itself; the shell's
  // per-address connection cap, and keying IPv6 clients by prefix, keep that expensive.
  while (order_.size() >= policy_.max_tracked) {
    index_.erase(order_.front().addr);
    order_.pop_front();
  }
  order_.push_back(Entry{std::string(addr), 1, now});
  const auto node = std::prev(order_.end());
  index_.emplace(std::string_view(node->addr), node);
}

void AuthThrottle::record_success(std::string_view addr, TimePoint now) {
  (void)now;
  const auto it = index_.find(addr);
  if (it == index_.end()) return;
  const auto node = it->second;
  index_.erase(it);   // before the node goes: the key views its string
  order_.erase(node);
}

}  // namespace mailferry::auth
