// hand_over.hpp: how `mailferry sendmail` gets one message out — to the running daemon over its
// local socket (done once the daemon has spooled it), or, with no daemon (a container), straight
// to the upstream with the same port order and TLS rules (done only once the upstream accepted).
// No Asio here: cli includes it.
#pragma once

#include <string>
#include <vector>

#include "mailferry/base/exit_code.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::daemon {

struct HandOver {
  std::string sender;                    // empty = null sender
  std::vector<std::string> recipients;
  std::string message;                   // CRLF lines, not dot-stuffed
  bool body_8bit = false;
};

struct HandOverResult {
  ExitCode code = ExitCode::ok;
  std::string error;      // one line for stderr when code is not ok
  std::string queue_id;   // the daemon's id, when it took the message
  bool via_daemon = false;
};

// `config_ok`: the config file could be read. Without it only the daemon path is possible (the
// socket's name needs spool_dir, whose default is then assumed).
HandOverResult hand_over(const config::Config& config, bool config_ok, const HandOver& message);

}  // namespace mailferry::daemon

namespace mailferry::daemon {

// `sendmail -q`, `queue flush`: asks the running daemon (ETRN on its local socket) to try every
// queued message now. unavailable (69) with the reason when no daemon answers.
HandOverResult flush_queue(const config::Config& config);
// `queue retry ID`: that message is tried now. `queue delete ID`: it is removed from the queue.
// Through the daemon (it owns the queue); 67 when it has no such message, 69 when none runs.
HandOverResult retry_message(const config::Config& config, const std::string& id);
HandOverResult delete_message(const config::Config& config, const std::string& id);

// `mailferry status`: the running daemon's state, "key=value" lines (ready, uptime_seconds,
// queued, deferred, failed, upstream_port, last_delivery, sessions). The daemon logs nothing for it.
struct DaemonStatus {
  bool ready = false;               // it answered and is not stopping
  std::vector<std::string> lines;
  std::string error;                // one line when not ready
};
DaemonStatus daemon_status(const config::Config& config);

}  // namespace mailferry::daemon
