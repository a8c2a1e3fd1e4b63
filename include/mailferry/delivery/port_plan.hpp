// port_plan.hpp: PortPlan, the order in which the upstream's ports are tried.
// The port that worked last goes first (so a blocked port costs its timeout once, not on every
// message); the configured order is tried again every `recheck_every`, so a port that reopens is
// used again. Pure: no sockets, no clock reads, no files (the daemon keeps last_good in the spool).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "mailferry/base/time.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::delivery {

class PortPlan {
 public:
  explicit PortPlan(std::vector<config::UpstreamPort> configured,
                    Duration recheck_every = std::chrono::hours(1));

  // The ports to try now, in order. Every configured port appears exactly once.
  std::vector<config::UpstreamPort> order(TimePoint now) const;
  // A port worked: it goes first from now on. Returns true when that changed last_good().
  bool record_success(std::uint16_t port, TimePoint now);
  // A port failed to connect (timeout, refused, TLS): it goes last until the next recheck.
  void record_failure(std::uint16_t port, TimePoint now);
  // A full pass over the configured order was started at `now`.
  void record_recheck(TimePoint now) { next_recheck_ = now + recheck_every_; }
  bool recheck_due(TimePoint now) const { return last_good_ && now >= next_recheck_; }

  std::optional<std::uint16_t> last_good() const { return last_good_; }
  // From the spool at start. A port no longer configured is ignored.
  void restore_last_good(std::uint16_t port, TimePoint now);

 private:
  std::vector<config::UpstreamPort> configured_;
  Duration recheck_every_;
  std::optional<std::uint16_t> last_good_;
  std::vector<std::uint16_t> failed_;   // failed since the last recheck, most recent last
  TimePoint next_recheck_{};
};

}  // namespace mailferry::delivery
