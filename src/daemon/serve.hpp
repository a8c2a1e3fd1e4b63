// serve.hpp: `mailferry serve` — the daemon in the foreground. No Asio here: cli includes it.
#pragma once

#include "mailferry/base/exit_code.hpp"
#include <string>

#include "mailferry/config/config.hpp"
#include "mailferry/config/env_overlay.hpp"

namespace mailferry::daemon {

// The local socket a running daemon accepts `sendmail` hand-offs on (one per spool directory).
std::string local_socket_name(const config::Config& config);

// Runs until SIGTERM/SIGINT; SIGHUP loads the config again from the same sources: the file named by
// `config_flag` (-c) or the environment's MAILFERRY_CONFIG, with `env` over it (see reload in
// serve.cpp). Returns the exit code; start-up failures print one line first.
ExitCode serve(const config::Config& config, const std::string& config_flag, config::Environment env);

}  // namespace mailferry::daemon
