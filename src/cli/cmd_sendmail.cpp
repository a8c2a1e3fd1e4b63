// cmd_sendmail.cpp: the drop-in sendmail. Every failure is one line on stderr and a sysexits code;
// with no daemon a failed message is not kept: the exit code tells the caller it still owns it.
#include "cli/cmd_sendmail.hpp"

#include "cli/cmd_queue.hpp"

#include <poll.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <sys/stat.h>

#include "daemon/hand_over.hpp"
#include "mailferry/base/exit_code.hpp"
#include "cli/environment.hpp"
#include "mailferry/config/load_config.hpp"
#include "mailferry/message/sendmail_args.hpp"
#include "mailferry/message/sendmail_input.hpp"
#include "mailferry/message/submission.hpp"
#include "mailferry/smtp/server_session.hpp"

namespace mailferry::cli {
namespace {

int fail(ExitCode code, const std::string& message) {
  std::fprintf(stderr, "mailferry sendmail: %s\n", message.c_str());
  return to_int(code);
}

std::string invoking_user() {
  char buf[1024];
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::getuid(), &pw, buf, sizeof buf, &found) == 0 && found) return pw.pw_name;
  if (const char* u = std::getenv("USER"); u && *u) return u;
  return "uid" + std::to_string(::getuid());
}

std::string system_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

// -bs: an SMTP session on stdin/stdout, as a listener would hold it (Symfony Mailer's default).
// Each message is handed over when its final "." arrives; the 250 means what it means for the
// plain mode. Nothing goes to stderr unless the run itself fails.
int smtp_session(const config::Config& cfg, bool config_ok) {
  smtp::SessionPolicy policy;
  policy.hostname = cfg.hostname;
  policy.limits.max_message_size = cfg.max_message_size;
  policy.auth_required = false;
  policy.peer_trusted = true;   // the local user, as on the daemon's local socket
  smtp::ServerSession session(policy);
  smtp::Transaction txn;
  std::string message;
  bool quit = false;
  auto write_out = [](const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::write(STDOUT_FILENO, bytes.data() + off, bytes.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  };
  session.handle_connected(Clock::now());
  char buf[65536];
  while (true) {
    while (auto action = session.poll_action()) {
      if (auto* send = std::get_if<smtp::server_action::Send>(&*action)) {
        // Replies to pipelined commands come together: the 221 may follow others in one write.
        if (send->bytes.rfind("221 ", 0) == 0 || send->bytes.find("\n221 ") != std::string::npos) quit = true;
        if (!write_out(send->bytes)) return to_int(ExitCode::io);
      } else if (auto* begin = std::get_if<smtp::server_action::BeginMessage>(&*action)) {
        txn = begin->transaction;
        message.clear();
      } else if (auto* append = std::get_if<smtp::server_action::AppendData>(&*action)) {
        message += append->bytes;
      } else if (std::holds_alternative<smtp::server_action::AbortMessage>(*action)) {
        message.clear();
      } else if (std::holds_alternative<smtp::server_action::CommitMessage>(*action)) {
        daemon::HandOver h{txn.sender, txn.recipients, std::move(message), txn.body_8bit};
        message.clear();
        const auto result = daemon::hand_over(cfg, config_ok, h);
        if (result.code == ExitCode::ok) {
          session.handle_committed(result.queue_id.empty() ? "(sent)" : result.queue_id, Clock::now());
        } else {
          session.handle_commit_failed(smtp::CommitError::io, Clock::now());
        }
      } else if (std::holds_alternative<smtp::server_action::Close>(*action)) {
        return quit ? 0 : to_int(ExitCode::temp_fail);
      } else {
        // StartTls, Authenticate and FlushQueue are never offered here (no TLS, no AUTH, no ETRN).
      }
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    int wait_ms = -1;
    if (auto d = session.poll_deadline()) {
      wait_ms = static_cast<int>(std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*d - Clock::now()).count()));
    }
    const int pr = ::poll(&p, 1, wait_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) {
      session.handle_timeout(Clock::now());
      continue;
    }
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      session.handle_eof(Clock::now());
      continue;
    }
    session.handle_bytes(std::span<const char>(buf, static_cast<std::size_t>(n)), Clock::now());
  }
}

}  // namespace

int cmd_sendmail(const std::vector<std::string>& argv) {
  auto args = message::parse_sendmail_args(argv);
  if (!args) return fail(ExitCode::usage, args.error().message);
  switch (args->mode) {
    case message::SendmailArgs::Mode::deliver:
      break;
    case message::SendmailArgs::Mode::print_queue:
      break;   // after the config is read
    case message::SendmailArgs::Mode::smtp_session:
      break;
    case message::SendmailArgs::Mode::flush_queue:
      break;   // after the config is read
  }

  // The config may be unreadable for an ordinary user (it holds secrets): the daemon path then
  // still works, with the default spool_dir naming its socket.
  // MAILFERRY_* variables apply as for every command (a container may have no file at all); their
  // warnings are not printed: sendmail stays quiet unless it fails.
  const config::Environment env = process_environment();
  const std::string path = config::config_file_path("", env);
  const bool named = path != config::default_config_path;   // a file named by MAILFERRY_CONFIG must exist (SPEC)
  config::Config cfg;
  bool config_ok = false;
  if (auto loaded = config::load_config("", env)) {
    cfg = std::move(loaded->config);
    config_ok = true;
  } else {
    struct stat st{};
    const bool exists = ::stat(path.c_str(), &st) == 0;
    if ((exists || named) && loaded.error().sys_errno != EACCES) return fail(ExitCode::config, loaded.error().message);
    cfg.hostname = system_hostname();
  }

  if (args->mode == message::SendmailArgs::Mode::smtp_session) return smtp_session(cfg, config_ok);
  if (args->mode == message::SendmailArgs::Mode::print_queue) return cmd_queue_list(cfg);
  if (args->mode == message::SendmailArgs::Mode::flush_queue) {
    const auto r = daemon::flush_queue(cfg);
    return r.code == ExitCode::ok ? 0 : fail(r.code, r.error);
  }

  message::SendmailInput input(args->ignore_dots, cfg.max_message_size);
  char buf[65536];
  while (!input.finished()) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ExitCode::io, std::string("cannot read the message from stdin: ") + std::strerror(errno));
    if (n == 0) break;
    input.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  input.end();
  if (input.too_big()) {
    return fail(ExitCode::data, "the message is larger than max_message_size (" + cfg.max_message_size_text + ")");
  }
  auto submission = message::prepare_submission(*args, input.take(), invoking_user(), cfg.hostname);
  if (!submission) return fail(message::submission_exit_code(submission.error()), submission.error().message);

  daemon::HandOver h;
  h.sender = submission->sender;
  h.recipients = submission->recipients;
  h.message = std::move(submission->message);
  for (unsigned char c : h.message) {
    if (c >= 0x80) {
      h.body_8bit = true;
      break;
    }
  }
  const auto result = daemon::hand_over(cfg, config_ok, h);
  if (result.code != ExitCode::ok) return fail(result.code, result.error);
  if (args->verbose) {
    if (result.via_daemon) std::fprintf(stderr, "mailferry sendmail: queued as %s\n", result.queue_id.c_str());
    else std::fprintf(stderr, "mailferry sendmail: delivered to %s\n", cfg.upstream.host.c_str());
  }
  return 0;
}

}  // namespace mailferry::cli
