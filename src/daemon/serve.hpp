// serve.hpp: `mailferry serve` — the daemon in the foreground. No Asio here: cli includes it.
#pragma once

#include "mailferry/base/exit_code.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::daemon {

// Runs until SIGTERM/SIGINT. Returns the exit code; start-up failures print one line first.
ExitCode serve(const config::Config& config);

}  // namespace mailferry::daemon
