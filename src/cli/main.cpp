// main.cpp: the command line. Dispatches subcommands with CLI11 and maps every failure to one line
// on stderr and a sysexits code.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/cmd_passwd.hpp"
#include "cli/cmd_queue.hpp"
#include "cli/cmd_sendmail.hpp"
#include "cli/environment.hpp"
#include "daemon/credentials.hpp"
#include "daemon/hand_over.hpp"
#include "daemon/probe.hpp"
#include "daemon/serve.hpp"
#include "mailferry/base/exit_code.hpp"
#include "mailferry/config/env_overlay.hpp"
#include "mailferry/config/load_config.hpp"
#include "mailferry/config/render_config.hpp"

using namespace mailferry;

namespace {

// The file (if any) with the environment over it. Warnings (unknown MAILFERRY_* names) are printed
// only when the config loads, so a failing start stays one line.
Result<config::Config> load(const std::string& flag) {
  auto loaded = config::load_config(flag, cli::process_environment());
  if (!loaded) return loaded.error();
  for (const auto& w : loaded->warnings) std::fprintf(stderr, "mailferry: warning: %s\n", w.c_str());
  return std::move(loaded->config);
}

int fail(ExitCode code, const std::string& message) {
  std::fprintf(stderr, "mailferry: %s\n", message.c_str());
  return to_int(code);
}

}  // namespace

int main(int argc, char** argv) {
  // Invoked as `sendmail` (a symlink or hard link), or as `mailferry sendmail`: sendmail's own
  // options, which no general-purpose parser understands (-FCronDaemon, -oi, -ti …).
  const std::string program = argc > 0 ? argv[0] : "mailferry";
  const std::string base = program.substr(program.rfind('/') + 1);
  if (base == "sendmail") return cli::cmd_sendmail(std::vector<std::string>(argv + 1, argv + argc));
  if (base == "mailq") {
    auto cfg = load("");
    if (!cfg) return fail(ExitCode::config, cfg.error().message);
    return cli::cmd_queue_list(*cfg);
  }
  if (argc > 1 && std::string(argv[1]) == "sendmail") {
    return cli::cmd_sendmail(std::vector<std::string>(argv + 2, argv + argc));
  }
  CLI::App app{"mailferry: an SMTP submission relay that forwards every message to one upstream provider"};
  app.set_version_flag("--version", std::string("mailferry ") + MAILFERRY_VERSION);
  app.require_subcommand(1);

  std::string config_flag;
  auto* serve = app.add_subcommand("serve", "run the daemon in the foreground, logs to stderr");
  serve->add_option("-c,--config", config_flag, "config file (default: $MAILFERRY_CONFIG, then /etc/mailferry/mailferry.toml)");
  auto* check = app.add_subcommand("check-config", "validate the config and print it, secrets masked");
  check->add_option("-c,--config", config_flag, "config file (default: $MAILFERRY_CONFIG, then /etc/mailferry/mailferry.toml)");
  auto* probe = app.add_subcommand("probe", "test every upstream port, send nothing: one line per port with its "
                                            "verdict and how long each step took; exit 0 if any port works, 69 if none");
  probe->add_option("-c,--config", config_flag, "config file (default: $MAILFERRY_CONFIG, then /etc/mailferry/mailferry.toml)");
  auto* status = app.add_subcommand("status", "ask the running daemon how it is (nothing is logged): key=value lines; "
                                              "exit 0 if it answers and is ready, 69 if not (a health check)");
  status->add_option("-c,--config", config_flag, "config file (default: $MAILFERRY_CONFIG, then /etc/mailferry/mailferry.toml)");
  app.add_subcommand("sendmail", "read a message on stdin and send it (sendmail options: -t -i -f -F -bs …)");
  auto* queue = app.add_subcommand("queue", "the queue: list, or show ID (works with or without the daemon)");
  queue->add_option("-c,--config", config_flag, "config file (default: $MAILFERRY_CONFIG, then /etc/mailferry/mailferry.toml)");
  queue->require_subcommand(1);
  auto* queue_list = queue->add_subcommand("list", "each message: id, size, arrival, state, sender, recipients, last reply");
  std::string queue_id;
  auto* queue_flush = queue->add_subcommand("flush", "ask the running daemon to try every queued message now");
  auto* queue_retry = queue->add_subcommand("retry", "ask the running daemon to try one message now");
  queue_retry->add_option("ID", queue_id, "queue id")->required();
  auto* queue_delete = queue->add_subcommand("delete", "remove one message from the queue (through the daemon)");
  queue_delete->add_option("ID", queue_id, "queue id")->required();
  auto* queue_show = queue->add_subcommand("show", "one message: its envelope and its text");
  queue_show->add_option("ID", queue_id, "queue id, as in the logs and queue list")->required();
  for (auto* leaf : {queue_list, queue_show, queue_flush, queue_retry, queue_delete}) {
    leaf->add_option("-c,--config", config_flag, "config file (default: $MAILFERRY_CONFIG, then /etc/mailferry/mailferry.toml)");
  }
  auto* passwd = app.add_subcommand("passwd", "read a password (no echo on a terminal, else one line of stdin) "
                                               "and print a crypt(3) hash for [[user]] password_hash");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : to_int(ExitCode::usage);
  }

  if (serve->parsed()) {
    auto cfg = load(config_flag);
    if (!cfg) return fail(ExitCode::config, cfg.error().message);
    // SIGHUP reads the same sources again: the file named the same way, the environment as at start.
    return to_int(daemon::serve(*cfg, config_flag, cli::process_environment()));
  }
  if (check->parsed()) {
    auto cfg = load(config_flag);
    if (!cfg) return fail(ExitCode::config, cfg.error().message);
    std::fputs(config::render_config(*cfg).c_str(), stdout);
    for (const auto& w : daemon::secret_file_warnings(*cfg)) std::fprintf(stderr, "mailferry: warning: %s\n", w.c_str());
    return 0;
  }
  if (passwd->parsed()) return cli::cmd_passwd();
  if (queue->parsed()) {
    auto cfg = load(config_flag);
    if (!cfg) return fail(ExitCode::config, cfg.error().message);
    if (queue_list->parsed()) return cli::cmd_queue_list(*cfg);
    if (queue_show->parsed()) return cli::cmd_queue_show(*cfg, queue_id);
    daemon::HandOverResult r;
    if (queue_flush->parsed()) r = daemon::flush_queue(*cfg);
    if (queue_retry->parsed()) r = daemon::retry_message(*cfg, queue_id);
    if (queue_delete->parsed()) r = daemon::delete_message(*cfg, queue_id);
    return r.code == ExitCode::ok ? 0 : fail(r.code, r.error);
  }
  if (status->parsed()) {
    auto cfg = load(config_flag);
    if (!cfg) return fail(ExitCode::config, cfg.error().message);
    const auto s = daemon::daemon_status(*cfg);
    for (const auto& line : s.lines) std::printf("%s\n", line.c_str());
    return s.ready ? 0 : fail(ExitCode::unavailable, s.error);
  }
  if (probe->parsed()) {
    auto cfg = load(config_flag);
    if (!cfg) return fail(ExitCode::config, cfg.error().message);
    return to_int(daemon::probe(*cfg));
  }
  return to_int(ExitCode::usage);
}
