// cmd_sendmail.hpp: `mailferry sendmail` (and mailferry invoked as `sendmail`): one message from
// stdin, handed to the daemon or, with none running, straight to the upstream.
#pragma once

#include <string>
#include <vector>

namespace mailferry::cli {

// `args` are the sendmail options and recipients (without the program name). Returns the exit code.
int cmd_sendmail(const std::vector<std::string>& args);

}  // namespace mailferry::cli
