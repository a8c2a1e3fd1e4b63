// time.hpp: the two kinds of time the core is handed (it never reads a clock itself).
// TimePoint (monotonic) drives protocol deadlines; WallTime is what the spool persists.
#pragma once

#include <chrono>

namespace mailferry {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::milliseconds;
using WallTime = std::chrono::system_clock::time_point;

}  // namespace mailferry
