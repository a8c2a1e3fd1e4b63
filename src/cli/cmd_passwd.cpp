// cmd_passwd.cpp: `mailferry passwd`. Reads the password (echo off on a terminal, one line of a
// pipe otherwise) and prints auth::hash_password's result.
#include "cli/cmd_passwd.hpp"

#include <signal.h>
#include <string.h>   // explicit_bzero
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>

#include "mailferry/auth/password.hpp"
#include "mailferry/base/exit_code.hpp"

namespace mailferry::cli {
namespace {

// Longer than any password libcrypt accepts (512 bytes), so hash_password gives the real reason.
constexpr std::size_t max_input = 4096;

// The terminal's settings before echo was turned off, for the signal handler: a Ctrl-C at the
// prompt must not leave the user's shell without echo.
struct termios saved_termios;
volatile sig_atomic_t echo_off = 0;
constexpr int restore_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_and_reraise(int sig) {
  if (echo_off) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);   // async-signal-safe
  signal(sig, SIG_DFL);
  raise(sig);
}

// Wipes the password from memory when it goes out of scope, however the command ends.
struct Wiped {
  std::string text;
  ~Wiped() { explicit_bzero(text.data(), text.size()); }
};

int fail(ExitCode code, const std::string& message) {
  std::fprintf(stderr, "mailferry: %s\n", message.c_str());
  return to_int(code);
}

enum class ReadStatus { ok, too_long, io_error };

// One line from `fd`, without its line ending. A line cut short by end of input counts as a line.
// Byte by byte on purpose: whatever follows the first line stays unread, and it is a few bytes.
ReadStatus read_line(int fd, std::string& out) {
  out.clear();
  for (;;) {
    char c;
    const ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ReadStatus::io_error;
    if (n == 0 || c == '\n') break;
    if (out.size() >= max_input) return ReadStatus::too_long;
    out += c;
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return ReadStatus::ok;
}

// Prompts on stderr and reads one line from the terminal with echo off (ECHONL still shows the
// newline, so the next prompt starts on its own line).
ReadStatus read_hidden(const char* prompt, std::string& out) {
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  struct termios quiet = saved_termios;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  echo_off = 1;
  const bool changed = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  const ReadStatus status = read_line(STDIN_FILENO, out);
  if (changed) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
  echo_off = 0;
  return status;
}

int report(ReadStatus status) {
  switch (status) {
    case ReadStatus::ok: return 0;
    case ReadStatus::too_long: return fail(ExitCode::data, "password too long (at most 511 bytes)");
    case ReadStatus::io_error: return fail(ExitCode::io, std::string("cannot read the password: ") + std::strerror(errno));
  }
  return to_int(ExitCode::software);
}

// Reads the password twice on a terminal; returns an exit code when that failed.
std::optional<int> read_from_terminal(Wiped& password) {
  if (tcgetattr(STDIN_FILENO, &saved_termios) != 0) {
    return fail(ExitCode::io, std::string("cannot read the terminal settings: ") + std::strerror(errno));
  }
  struct sigaction handler {};
  handler.sa_handler = restore_and_reraise;
  sigemptyset(&handler.sa_mask);
  struct sigaction previous[std::size(restore_signals)];
  for (std::size_t i = 0; i < std::size(restore_signals); ++i) sigaction(restore_signals[i], &handler, &previous[i]);

  std::optional<int> result;
  Wiped again;
  if (const ReadStatus s = read_hidden("Password: ", password.text); s != ReadStatus::ok) {
    result = report(s);
  } else if (password.text.empty()) {
    result = fail(ExitCode::data, "empty password");
  } else if (const ReadStatus s2 = read_hidden("Again: ", again.text); s2 != ReadStatus::ok) {
    result = report(s2);
  } else if (again.text != password.text) {
    result = fail(ExitCode::data, "passwords do not match");
  }
  for (std::size_t i = 0; i < std::size(restore_signals); ++i) sigaction(restore_signals[i], &previous[i], nullptr);
  return result;
}

}  // namespace

int cmd_passwd() {
  Wiped password;
  if (isatty(STDIN_FILENO)) {
    if (const auto rc = read_from_terminal(password)) return *rc;
  } else {
    if (const ReadStatus s = read_line(STDIN_FILENO, password.text); s != ReadStatus::ok) return report(s);
    if (password.text.empty()) return fail(ExitCode::data, "empty password on standard input");
  }
  auto hash = auth::hash_password(password.text);
  // An error from the OS (no randomness) is the system's fault; any other is about the password.
  if (!hash) return fail(hash.error().sys_errno != 0 ? ExitCode::software : ExitCode::data, hash.error().message);
  std::printf("%s\n", hash->c_str());
  if (std::fflush(stdout) != 0) return fail(ExitCode::io, std::string("cannot write the hash: ") + std::strerror(errno));
  return to_int(ExitCode::ok);
}

}  // namespace mailferry::cli
