// render_config.hpp: the effective Config as TOML, what `mailferry check-config` prints.
// Every value is shown, defaults included, in the SPEC's order and names, so the output is itself a
// valid mailferry.toml; secrets (upstream.password, each user's password_hash) print as "********".
// A value set by an environment variable ends with "   # from MAILFERRY_…" (Config::env_sources).
// Never reveals a Secret and never touches a file. Loading the output back works except for the
// masked values, which load_config refuses by name (see masked_secret in config.hpp).
#pragma once

#include <string>

#include "mailferry/config/config.hpp"

namespace mailferry::config {

std::string render_config(const Config& config);

}  // namespace mailferry::config
