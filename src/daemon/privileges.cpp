// privileges.cpp: the switch from root to run_as, done once the listeners are bound.
#include "daemon/privileges.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <vector>

namespace mailferry::daemon {
namespace {

Error sys(const std::string& what, int err) { return Error{what + ": " + std::strerror(err), err}; }

bool parse_id(std::string_view text, unsigned long& out) {
  if (text.empty()) return false;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

}  // namespace

Result<RunAs> resolve_run_as(const std::string& spec) {
  RunAs user;
  user.name = spec;
  const auto colon = spec.find(':');
  unsigned long uid = 0, gid = 0;
  if (parse_id(std::string_view(spec).substr(0, colon), uid)) {
    if (colon != std::string::npos && !parse_id(std::string_view(spec).substr(colon + 1), gid)) {
      return Error{"run_as \"" + spec + "\": expected a user name, UID or UID:GID"};
    }
    user.uid = static_cast<uid_t>(uid);
    // UID alone: the user's own group when the database knows it, else the same number.
    user.gid = static_cast<gid_t>(colon != std::string::npos ? gid : uid);
    if (colon == std::string::npos) {
      if (const passwd* pw = ::getpwuid(user.uid)) user.gid = pw->pw_gid;
    }
    user.groups = {user.gid};
  } else {
    char buf[4096];
    passwd pw{};
    passwd* found = nullptr;
    const int rc = ::getpwnam_r(spec.c_str(), &pw, buf, sizeof buf, &found);
    if (rc != 0 || found == nullptr) {
      return Error{"run_as \"" + spec + "\": no such user (create it, e.g. useradd --system --no-create-home " + spec +
                   ", or give UID:GID)"};
    }
    user.uid = pw.pw_uid;
    user.gid = pw.pw_gid;
    int n = 32;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    if (::getgrouplist(spec.c_str(), user.gid, groups.data(), &n) < 0) {
      groups.resize(static_cast<std::size_t>(n));
      ::getgrouplist(spec.c_str(), user.gid, groups.data(), &n);
    }
    groups.resize(static_cast<std::size_t>(std::max(n, 0)));
    user.groups = std::move(groups);
  }
  if (user.uid == 0) return Error{"run_as \"" + spec + "\" is root: name an unprivileged user"};
  return user;
}

Result<void> hand_over_spool(const std::string& spool_dir, const RunAs& user) {
  namespace fs = std::filesystem;
  auto give = [&](const fs::path& p) -> Result<void> {
    if (::lchown(p.c_str(), user.uid, user.gid) != 0) return sys("cannot give " + p.string() + " to run_as", errno);
    return {};
  };
  if (auto r = give(spool_dir); !r) return r;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(spool_dir, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (auto r = give(it->path()); !r) return r;
  }
  if (ec) return sys("cannot walk " + spool_dir, ec.value());
  return {};
}

Result<void> drop_privileges(const RunAs& user) {
  // glibc applies each of these to every thread of the process (the disk pool's too).
  if (::setgroups(user.groups.size(), user.groups.data()) != 0) return sys("setgroups", errno);
  if (::setgid(user.gid) != 0) return sys("setgid(" + std::to_string(user.gid) + ")", errno);
  if (::setuid(user.uid) != 0) return sys("setuid(" + std::to_string(user.uid) + ")", errno);
  if (::setuid(0) == 0 || ::geteuid() == 0) return Error{"still able to become root after dropping privileges"};
  return {};
}

}  // namespace mailferry::daemon
