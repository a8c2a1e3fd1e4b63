// port_plan.cpp: ordering the upstream ports.
#include "mailferry/delivery/port_plan.hpp"

#include <algorithm>

namespace mailferry::delivery {

PortPlan::PortPlan(std::vector<config::UpstreamPort> configured, Duration recheck_every)
    : configured_(std::move(configured)), recheck_every_(recheck_every) {}

std::vector<config::UpstreamPort> PortPlan::order(TimePoint now) const {
  // Recheck: the configured order, as the user wrote it.
  if (recheck_due(now)) return configured_;
  std::vector<config::UpstreamPort> out;
  auto by_port = [&](std::uint16_t port) {
    return std::find_if(configured_.begin(), configured_.end(), [&](const auto& p) { return p.port == port; });
  };
  if (last_good_) {
    if (auto it = by_port(*last_good_); it != configured_.end()) out.push_back(*it);
  }
  // Then the ports not known to fail, in configured order; the ones that failed last.
  for (const auto& p : configured_) {
    if (p.port == last_good_) continue;
    if (std::find(failed_.begin(), failed_.end(), p.port) != failed_.end()) continue;
    out.push_back(p);
  }
  for (auto port : failed_) {
    if (port == last_good_) continue;
    if (auto it = by_port(port); it != configured_.end()) out.push_back(*it);
  }
  return out;
}

bool PortPlan::record_success(std::uint16_t port, TimePoint now) {
  failed_.erase(std::remove(failed_.begin(), failed_.end(), port), failed_.end());
  const bool changed = last_good_ != port;
  if (!last_good_ || changed) next_recheck_ = now + recheck_every_;
  last_good_ = port;
  return changed;
}

void PortPlan::record_failure(std::uint16_t port, TimePoint now) {
  (void)now;
  failed_.erase(std::remove(failed_.begin(), failed_.end(), port), failed_.end());
  failed_.push_back(port);
  if (last_good_ == port) last_good_.reset();
}

void PortPlan::restore_last_good(std::uint16_t port, TimePoint now) {
  const bool configured = std::any_of(configured_.begin(), configured_.end(),
                                      [&](const auto& p) { return p.port == port; });
  if (!configured) return;
  last_good_ = port;
  next_recheck_ = now + recheck_every_;
}

}  // namespace mailferry::delivery
