// env_overlay.hpp: MAILFERRY_* variables (and NAME_FILE for mounted secrets) over the file's values,
// each value keeping the name of the variable it came from (SPEC "Running it" → Environment).
// Pure apart from reading the config file and the files NAME_FILE variables name: the environment is
// passed in, never read from the process here (src/cli collects `environ`).
//
//   MAILFERRY_ + the key's path in upper case, tables joined by "_": MAILFERRY_HOSTNAME,
//   MAILFERRY_UPSTREAM_HOST, MAILFERRY_UPSTREAM_OAUTH2_CLIENT_ID, MAILFERRY_TLS_CERT_FILE …
//   Arrays are comma-separated (MAILFERRY_TRUSTED_NETWORKS=10.0.0.0/8,fd00::/8); an empty value is an
//   empty array. Ports take PORT or PORT/TLS (587,2525/none,2465/implicit).
//   MAILFERRY_LISTEN="0.0.0.0:587 starttls required, 127.0.0.1:25 none none": address [tls [auth]].
//   MAILFERRY_USERS: one "name:hash" or "name:hash:sender,sender" per line (crypt hashes have no ":").
//   NAME_FILE: the named file's content, one trailing newline removed, is NAME's value. A name that is
//   itself a key (MAILFERRY_TLS_CERT_FILE is tls.cert_file) is that key, never an indirection.
//
// A variable replaces the file's key (a whole array for arrays). A malformed value is one line that
// starts with the variable's name; an unknown MAILFERRY_* name is a warning, not an error.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailferry/base/result.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::config {

// NAME=value pairs, as in `environ`; entries not starting with MAILFERRY_ are ignored.
using Environment = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::string_view default_config_path = "/etc/mailferry/mailferry.toml";

struct LoadedConfig {
  Config config;
  std::vector<std::string> warnings;   // one line each, without the "mailferry: warning: " prefix
};

// The file to read: -c (`flag`), else MAILFERRY_CONFIG, else default_config_path.
std::string config_file_path(const std::string& flag, const Environment& env);

// The configuration `serve`, `check-config` and the others run with. A file named by -c or
// MAILFERRY_CONFIG must exist; the default path may be absent, and then the environment alone is the
// configuration (with no file and no MAILFERRY_* setting at all, the default path's "cannot read
// config" error stands, which says what to do).
Result<LoadedConfig> load_config(const std::string& flag, const Environment& env);

// TOML text with the environment over it; `source_name` = "" means there is no file.
Result<LoadedConfig> parse_config(std::string_view toml_text, const std::string& source_name,
                                  const Environment& env);

}  // namespace mailferry::config
