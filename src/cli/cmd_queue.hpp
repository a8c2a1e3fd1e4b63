// cmd_queue.hpp: `mailferry queue list | show ID` (and `mailq`, `sendmail -bp`): reads the spool
// directly, so it works whether or not the daemon runs.
#pragma once

#include <string>

#include "mailferry/config/config.hpp"

namespace mailferry::cli {

int cmd_queue_list(const config::Config& config);
int cmd_queue_show(const config::Config& config, const std::string& id);

}  // namespace mailferry::cli
