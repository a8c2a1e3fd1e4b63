// credentials.hpp: the upstream secret from wherever [upstream] says it lives — `password`,
// `password_file` (trailing newline removed) or `password_command` (the first line of its output,
// as msmtp's passwordeval; for XOAUTH2 that is an access token). Blocking: call it off the loop.
#pragma once

#include "mailferry/base/result.hpp"
#include "mailferry/base/secret.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::daemon {

// An empty Secret when [upstream] names no credentials at all.
Result<Secret> upstream_secret(const config::Upstream& upstream);

// One line per secret file that others may read (mode & 077), for check-config and serve to warn.
std::vector<std::string> secret_file_warnings(const config::Config& config);

}  // namespace mailferry::daemon
