// environment.hpp: the process's MAILFERRY_* variables, for the config module, which never reads
// the environment itself (config/env_overlay.hpp).
#pragma once

#include "mailferry/config/env_overlay.hpp"

namespace mailferry::cli {

config::Environment process_environment();

}  // namespace mailferry::cli
