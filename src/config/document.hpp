// document.hpp: the parsed TOML document between reading and checking, shared inside the config module
// by load_config.cpp (file → document → Config) and env_overlay.cpp (variables into the document).
// Not installed and not part of the core's API: toml++ stays out of include/mailferry/.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <toml++/toml.h>

#include "mailferry/base/result.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::config::detail {

// Values taken from a variable are parsed with this prefix and the variable's name as their source
// path, so an error about them names the variable instead of a line of a file. No file a user names
// starts with a control character.
inline constexpr std::string_view env_origin = "\x1f" "env:";

// A whole file of at most max_size bytes; on failure the Error has only sys_errno (EFBIG: too large),
// for the caller to word.
Result<std::string> read_file(const std::string& path, std::size_t max_size);

// The file's bytes; a missing or unreadable file is "<path>: cannot read config: …" with sys_errno.
Result<std::string> read_config_text(const std::string& path);

// TOML syntax only; a syntax error is "<source>:<line>:<column>: invalid TOML: …".
Result<toml::table> parse_document(std::string_view toml_text, const std::string& source_name);

// Every key, type and value, then the rules across keys; `source_name` ("" = the environment alone)
// prefixes errors about the file and becomes Config::source_path.
Result<Config> config_from_document(const toml::table& root, const std::string& source_name);

// "; did you mean "listen"?" when one candidate is within two edits, else "".
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace mailferry::config::detail
