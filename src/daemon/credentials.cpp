// credentials.cpp: reading the upstream secret.
#include "daemon/credentials.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

extern char** environ;

namespace mailferry::daemon {
namespace {

// A password command that hangs must not hang deliveries with it.
constexpr auto command_timeout = std::chrono::seconds(30);
constexpr std::size_t max_secret = 64 * 1024;

void strip_line_end(std::string& s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
}

Result<Secret> read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{path + ": cannot read upstream password_file: " + std::strerror(errno) +
                     " (check the path and that the mailferry user may read it)",
                 errno};
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string s = buf.str();
  if (s.size() > max_secret) return Error{path + ": upstream password_file is larger than 64 KiB"};
  strip_line_end(s);
  return Secret(std::move(s));
}

Result<Secret> run_secret_command(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Error{std::string("password_command: pipe: ") + std::strerror(errno), errno};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return Error{"password_command " + argv[0] + ": cannot run it: " + std::strerror(rc), rc};
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + command_timeout;
  bool timed_out = false;
  char buf[4096];
  while (out.size() <= max_secret) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int pr = poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) {
      timed_out = pr == 0;
      break;
    }
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (timed_out) return Error{"password_command " + argv[0] + ": no answer within 30 s"};
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error{"password_command " + argv[0] + ": exited with status " +
                 std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status))};
  }
  const auto nl = out.find('\n');
  if (nl != std::string::npos) out.resize(nl);
  strip_line_end(out);
  if (out.empty()) return Error{"password_command " + argv[0] + ": printed nothing"};
  return Secret(std::move(out));
}

// Group read is not a leak when the group is this process's own: Kubernetes mounts a Secret as
// root:fsGroup and adds group read itself (0440), and systemd credentials and Debian's ssl-cert
// keys are readable by the service's group in the same way.
bool own_group(gid_t gid) {
  if (gid == getegid()) return true;
  const int n = getgroups(0, nullptr);
  if (n <= 0) return false;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  const int got = getgroups(n, groups.data());
  return got > 0 && std::find(groups.begin(), groups.begin() + got, gid) != groups.begin() + got;
}

}  // namespace

Result<Secret> upstream_secret(const config::Upstream& upstream) {
  if (!upstream.password.empty()) return upstream.password;
  if (!upstream.password_file.empty()) return read_secret_file(upstream.password_file);
  if (!upstream.password_command.empty()) return run_secret_command(upstream.password_command);
  return Secret{};
}

std::vector<std::string> secret_file_warnings(const config::Config& config) {
  std::vector<std::string> out;
  auto check = [&](const std::string& path, const char* what) {
    struct stat st{};
    if (path.empty() || stat(path.c_str(), &st) != 0) return;
    const bool by_others = (st.st_mode & 007) != 0;
    const bool by_group = (st.st_mode & 070) != 0 && !own_group(st.st_gid);
    if (by_others || by_group) {
      out.push_back(path + ": " + what + " is readable by others (mode " +
                    std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                    std::to_string(st.st_mode & 7) + "); run chmod 600 " + path);
    }
  };
  check(config.upstream.password_file, "the upstream password file");
  if (config.tls) check(config.tls->key_file, "the TLS private key");
  if (config.upstream.oauth2) {
    check(config.upstream.oauth2->client_secret_file, "the OAuth2 client secret");
    check(config.upstream.oauth2->refresh_token_file, "the OAuth2 refresh token");
  }
  return out;
}

}  // namespace mailferry::daemon
