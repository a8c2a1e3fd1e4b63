// probe.hpp: `mailferry probe` — tries every upstream port, sends no mail, and says in plain words
// what happened on each. No Asio here: cli includes it.
#pragma once

#include "mailferry/base/exit_code.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::daemon {

// One line per port on stdout as it finishes, then the port mailferry will use.
// ok if any port works, unavailable (69) if none does.
ExitCode probe(const config::Config& config);

}  // namespace mailferry::daemon
