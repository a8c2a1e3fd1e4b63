// metrics.hpp: what /metrics reports, and its Prometheus text exposition (format 0.0.4).
// Pure: the daemon fills a Snapshot from its counters, its queue and /proc; this renders it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "mailferry/smtp/rejection.hpp"

namespace mailferry::metrics {

// Events counted since the start. The daemon touches them only on its event loop thread (sessions,
// the scheduler and the HTTP endpoint all run there), so plain integers do: no lock, no atomic on
// the message path.
struct Counters {
  std::map<std::string, std::uint64_t> received;         // by listener address, or "sendmail"
  std::uint64_t delivered = 0;                           // messages that left the queue delivered (to ≥ 1 recipient)
  std::uint64_t deferred = 0;                            // delivery attempts that ended in a temporary failure
  std::uint64_t bounced = 0;                             // messages that failed for ≥ 1 recipient (a DSN, or none for a null sender)
  std::map<std::pair<std::uint16_t, std::string>, std::uint64_t> upstream_attempts;   // (port, result)
  std::map<std::string, std::uint64_t> auth_failures;   // by listener
  smtp::RejectionCounts rejected{};                      // decided by the shell, and by sessions that ended
};

// The standard process_* series (as the Prometheus client libraries export them).
struct ProcessStats {
  double cpu_seconds = 0;
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
  double start_time_seconds = 0;   // since the Unix epoch
};

struct Snapshot {
  std::string version;
  Counters counters;                                     // with the open sessions' rejections added
  std::map<std::string, std::uint64_t> sessions_active;  // by listener; every configured one present
  std::uint64_t queued = 0, deferred_now = 0, failed = 0;
  double oldest_queued_seconds = 0;
  std::uint16_t upstream_port = 0;
  ProcessStats process;
};

// Fills cpu_seconds, virtual_bytes, resident_bytes and start_time_seconds from the text of
// /proc/self/stat and /proc/stat (its btime line), as proc(5) lays them out; false if malformed.
bool parse_proc_stat(std::string_view self_stat, std::string_view system_stat, long ticks_per_second,
                     long page_size, ProcessStats& out);

// The upstream_attempts `result` label for a port attempt's verdict: the `probe` verdicts, with
// any other connection failure (reset, DNS) counted as "refused".
std::string attempt_result(const std::string& verdict);

// Every series of the SPEC's table plus process_*: HELP and TYPE once per family, label values
// escaped, families whose labels are fixed (queue state, rejection reason) always complete.
std::string render(const Snapshot& s);

}  // namespace mailferry::metrics
