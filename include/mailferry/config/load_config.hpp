// load_config.hpp: mailferry.toml → a validated Config, or one line saying exactly what is wrong:
//   <file>:<line>:<column>: <what> (expected <what>)
// e.g.  mailferry.toml:14:1: unknown key "listne"; did you mean "listen"? (expected one of: hostname, …)
// When a file has several mistakes, the one nearest its start is reported.
// Never reads the environment (env_overlay does) and never opens the files a config names (cert_file,
// password_file, …): `serve` and `probe` open them when they need them, and say so if they cannot.
//
// Defaults applied when a key is absent (the rest are the initialisers in config.hpp):
//   - hostname: gethostname(), or "localhost" if that fails;
//   - trusted_networks: ["127.0.0.0/8", "::1/128"];
//   - no [[listen]] at all: ONE listener 127.0.0.1:2525, tls = "none", auth = "none" — loopback only,
//     so only local software (trusted_networks) can submit; an explicit `listen = []` means no SMTP
//     listener (sendmail hand-off and the queue still work).
// Rules beyond types: a listener with tls = "none" must have auth = "none" (AUTH is only offered over
// TLS, so it could never accept mail); proxy_protocol = true needs proxy_from; [upstream.oauth2] needs
// auth = "xoauth2" and replaces password / password_file / password_command.
#pragma once

#include <string>
#include <string_view>

#include "mailferry/base/result.hpp"
#include "mailferry/config/config.hpp"

namespace mailferry::config {

// Reads and parses `path`. A missing or unreadable file is
//   <path>: cannot read config: <strerror> (create it or pass -c FILE)
// with Error::sys_errno set.
Result<Config> load_config(const std::string& path);

// Parses TOML text; `source_name` starts every error message and becomes Config::source_path.
Result<Config> parse_config(std::string_view toml_text, const std::string& source_name);

// The rules that relate several keys (upstream.host present, a certificate for TLS listeners, one
// password source, OAuth2 consistency, unique user names and listener addresses), for a Config that
// was changed after parse_config (the environment overlay). parse_config already applies them, with
// line numbers; errors here name Config::source_path but no line.
Result<void> validate_config(const Config& config);

}  // namespace mailferry::config
