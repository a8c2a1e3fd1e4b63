// privileges.hpp: run_as — `serve` started as root binds its ports, then becomes this user.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "mailferry/base/result.hpp"

namespace mailferry::daemon {

struct RunAs {
  std::string name;            // as configured, for messages
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;   // supplementary groups (a name's, from the group database)
};

// "mailferry" (a user name), or "UID" / "UID:GID" (numbers: no user database needed, as in a
// container). The error is the one line a user sees.
Result<RunAs> resolve_run_as(const std::string& spec);

// Gives the spool to the user: every directory and file under spool_dir (a spool written by root
// before would otherwise be unreadable to it). Symbolic links are not followed.
Result<void> hand_over_spool(const std::string& spool_dir, const RunAs& user);

// setgroups, setgid, setuid — for every thread of the process — then checks that root cannot
// be regained.
Result<void> drop_privileges(const RunAs& user);

}  // namespace mailferry::daemon
