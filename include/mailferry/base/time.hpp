// time.hpp: the two kinds of time the core is handed (it never reads a clock itself).
// TimePoint (monotonic) drives protocol deadlines; WallTime is what the spool persists.
#pragma once

#include <chrono>
#include <string>

namespace mailferry {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::milliseconds;
using WallTime = std::chrono::system_clock::time_point;

// "2026-11-23T11:50:12Z", or "2026-11-23T11:50:12.438Z" with milliseconds (log lines): RFC 3339
// in UTC, as logs, `status` and the queue's next-attempt times show it.
std::string format_utc(WallTime t, bool with_millis = false);

}  // namespace mailferry
