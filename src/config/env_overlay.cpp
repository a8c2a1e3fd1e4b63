// env_overlay.cpp: each MAILFERRY_* variable becomes a TOML value inserted into the parsed document
// before the file loader checks it, so the environment obeys exactly the file's rules. Values are
// parsed as TOML with the variable's name as their source path, which is how an error about them ends
// up naming the variable rather than a line.
#include "mailferry/config/env_overlay.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

#include "document.hpp"
#include "mailferry/config/units.hpp"

namespace mailferry::config {
namespace {

enum class Kind { string, strings, ports, listen, users };

struct Variable {
  std::string_view name;
  std::string_view table;   // "" = top level, else a dotted path of tables
  std::string_view key;
  Kind kind;
};

constexpr std::array<Variable, 32> variables{{
    {"MAILFERRY_HOSTNAME", "", "hostname", Kind::string},
    {"MAILFERRY_SPOOL_DIR", "", "spool_dir", Kind::string},
    {"MAILFERRY_RUN_AS", "", "run_as", Kind::string},
    {"MAILFERRY_MAX_MESSAGE_SIZE", "", "max_message_size", Kind::string},
    {"MAILFERRY_TRUSTED_NETWORKS", "", "trusted_networks", Kind::strings},
    {"MAILFERRY_LOG_FORMAT", "", "log_format", Kind::string},
    {"MAILFERRY_LISTEN", "", "listen", Kind::listen},
    {"MAILFERRY_USERS", "", "user", Kind::users},
    {"MAILFERRY_TLS_CERT_FILE", "tls", "cert_file", Kind::string},
    {"MAILFERRY_TLS_KEY_FILE", "tls", "key_file", Kind::string},
    {"MAILFERRY_UPSTREAM_HOST", "upstream", "host", Kind::string},
    {"MAILFERRY_UPSTREAM_PORTS", "upstream", "ports", Kind::ports},
    {"MAILFERRY_UPSTREAM_USERNAME", "upstream", "username", Kind::string},
    {"MAILFERRY_UPSTREAM_PASSWORD", "upstream", "password", Kind::string},
    {"MAILFERRY_UPSTREAM_PASSWORD_FILE", "upstream", "password_file", Kind::string},
    {"MAILFERRY_UPSTREAM_PASSWORD_COMMAND", "upstream", "password_command", Kind::strings},
    {"MAILFERRY_UPSTREAM_AUTH", "upstream", "auth", Kind::string},
    {"MAILFERRY_UPSTREAM_CA_FILE", "upstream", "ca_file", Kind::string},
    {"MAILFERRY_UPSTREAM_CONNECT_TIMEOUT", "upstream", "connect_timeout", Kind::string},
    {"MAILFERRY_UPSTREAM_MAX_RATE", "upstream", "max_rate", Kind::string},
    {"MAILFERRY_UPSTREAM_OAUTH2_PROVIDER", "upstream.oauth2", "provider", Kind::string},
    {"MAILFERRY_UPSTREAM_OAUTH2_TENANT", "upstream.oauth2", "tenant", Kind::string},
    {"MAILFERRY_UPSTREAM_OAUTH2_CLIENT_ID", "upstream.oauth2", "client_id", Kind::string},
    {"MAILFERRY_UPSTREAM_OAUTH2_CLIENT_SECRET_FILE", "upstream.oauth2", "client_secret_file", Kind::string},
    {"MAILFERRY_UPSTREAM_OAUTH2_REFRESH_TOKEN_FILE", "upstream.oauth2", "refresh_token_file", Kind::string},
    {"MAILFERRY_UPSTREAM_OAUTH2_TOKEN_URL", "upstream.oauth2", "token_url", Kind::string},
    {"MAILFERRY_UPSTREAM_OAUTH2_DEVICE_URL", "upstream.oauth2", "device_url", Kind::string},
    {"MAILFERRY_REWRITE_ENVELOPE_FROM", "rewrite", "envelope_from", Kind::string},
    {"MAILFERRY_REWRITE_HEADER_FROM", "rewrite", "header_from", Kind::string},
    {"MAILFERRY_QUEUE_RETRY_SCHEDULE", "queue", "retry_schedule", Kind::strings},
    {"MAILFERRY_QUEUE_MAX_AGE", "queue", "max_age", Kind::string},
    {"MAILFERRY_METRICS_ADDRESS", "metrics", "address", Kind::string},
}};

constexpr std::string_view prefix = "MAILFERRY_";
constexpr std::string_view config_variable = "MAILFERRY_CONFIG";   // chooses the file; not a key
constexpr std::string_view file_suffix = "_FILE";

const Variable* find_variable(std::string_view name) {
  for (const Variable& v : variables) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

std::string key_path(const Variable& v) {
  return v.table.empty() ? std::string(v.key) : std::string(v.table) + "." + std::string(v.key);
}

Error variable_error(std::string_view variable, const std::string& text) {
  return Error{std::string(variable) + ": " + text};
}

std::string_view trimmed(std::string_view s) {
  constexpr std::string_view space = " \t\r\n";
  const auto begin = s.find_first_not_of(space);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

// Comma-separated entries, each trimmed. An empty value is an empty array; an empty entry ("a,,b",
// a trailing comma) is an error, since a dropped entry would silently change what is configured.
Result<std::vector<std::string_view>> split_list(std::string_view variable, std::string_view value,
                                                 std::string_view example) {
  std::vector<std::string_view> out;
  if (trimmed(value).empty()) return out;
  for (std::size_t start = 0;;) {
    const auto comma = value.find(',', start);
    const std::string_view entry = trimmed(value.substr(start, comma == std::string_view::npos
                                                                   ? std::string_view::npos
                                                                   : comma - start));
    if (entry.empty()) {
      return variable_error(variable, "has an empty entry (expected comma-separated values, like " +
                                          std::string(example) + ")");
    }
    out.push_back(entry);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// "587" → 587, "2525/none" → { port = 2525, tls = "none" }. The range and the TLS mode are the file
// loader's to check; only the shape is checked here.
Result<toml::array> ports_value(std::string_view variable, std::string_view value) {
  constexpr std::string_view example = "587,2525/none,2465/implicit";
  auto entries = split_list(variable, value, example);
  if (!entries) return entries.error();
  toml::array out;
  for (std::string_view entry : *entries) {
    const auto slash = entry.find('/');
    const std::string_view number = entry.substr(0, slash);
    if (number.empty() || number.size() > 9 ||
        !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return variable_error(variable, value_error(entry, "is not a port",
                                                  "(expected PORT or PORT/TLS, like " + std::string(example) + ")")
                                          .message);
    }
    const auto port = static_cast<std::int64_t>(std::stol(std::string(number)));
    if (slash == std::string_view::npos) {
      out.push_back(port);
    } else {
      out.push_back(toml::table{{"port", port}, {"tls", std::string(entry.substr(slash + 1))}});
    }
  }
  return out;
}

// "0.0.0.0:587 starttls required, 127.0.0.1:25 none none": address, then optional tls and auth.
Result<toml::array> listen_value(std::string_view variable, std::string_view value) {
  constexpr std::string_view example = R"("0.0.0.0:587 starttls required, 127.0.0.1:25 none none")";
  auto entries = split_list(variable, value, example);
  if (!entries) return entries.error();
  toml::array out;
  for (std::string_view entry : *entries) {
    std::istringstream words{std::string(entry)};
    std::vector<std::string> fields;
    for (std::string w; words >> w;) fields.push_back(w);
    if (fields.size() > 3) {
      return variable_error(variable, value_error(entry, "has more than address, tls and auth",
                                                  "(expected entries like " + std::string(example) + ")")
                                          .message);
    }
    toml::table listener{{"address", fields[0]}};
    if (fields.size() > 1) listener.insert("tls", fields[1]);
    if (fields.size() > 2) listener.insert("auth", fields[2]);
    out.push_back(std::move(listener));
  }
  return out;
}

// One "name:hash" or "name:hash:sender,sender" per line. A malformed line is named by its number,
// never quoted: it may hold a password typed where the hash belongs.
Result<toml::array> users_value(std::string_view variable, std::string_view value) {
  toml::array out;
  std::size_t number = 0;
  for (std::size_t start = 0; start <= value.size(); ++number) {
    const auto newline = value.find('\n', start);
    const std::string_view line =
        trimmed(value.substr(start, newline == std::string_view::npos ? std::string_view::npos : newline - start));
    start = newline == std::string_view::npos ? value.size() + 1 : newline + 1;
    if (line.empty()) continue;
    const auto first = line.find(':');
    if (first == std::string_view::npos) {
      return variable_error(variable, "line " + std::to_string(number + 1) +
                                          R"( has no ":" (expected name:hash or name:hash:sender,sender, one user per line))");
    }
    const std::string_view rest = line.substr(first + 1);
    const auto second = rest.find(':');
    toml::table user{{"name", std::string(line.substr(0, first))},
                     {"password_hash", std::string(rest.substr(0, second))}};
    if (second != std::string_view::npos) {
      auto senders = split_list(variable, rest.substr(second + 1), "a@example.com,@example.org");
      if (!senders) return senders.error();
      toml::array list;
      for (std::string_view s : *senders) list.push_back(std::string(s));
      user.insert("allowed_senders", std::move(list));
    }
    out.push_back(std::move(user));
  }
  return out;
}

Result<toml::table> holder_of(const Variable& v, std::string_view variable, std::string_view value) {
  switch (v.kind) {
    case Kind::string: return toml::table{{"v", std::string(value)}};
    case Kind::strings: {
      auto entries = split_list(variable, value, "a,b");
      if (!entries) return entries.error();
      toml::array list;
      for (std::string_view e : *entries) list.push_back(std::string(e));
      return toml::table{{"v", std::move(list)}};
    }
    case Kind::ports: {
      auto ports = ports_value(variable, value);
      if (!ports) return ports.error();
      return toml::table{{"v", std::move(*ports)}};
    }
    case Kind::listen: {
      auto listen = listen_value(variable, value);
      if (!listen) return listen.error();
      return toml::table{{"v", std::move(*listen)}};
    }
    case Kind::users: {
      auto users = users_value(variable, value);
      if (!users) return users.error();
      return toml::table{{"v", std::move(*users)}};
    }
  }
  return Error{"unreachable"};
}

// The value as a TOML node whose source region names the variable. toml++ sets source regions only
// while parsing, so the value is written out as TOML and parsed back under the variable's name.
Result<toml::table> sourced_value(const Variable& v, std::string_view variable, std::string_view value) {
  auto holder = holder_of(v, variable, value);
  if (!holder) return holder.error();
  std::ostringstream text;
  text << toml::toml_formatter{*holder};
  return detail::parse_document(text.str(), std::string(detail::env_origin) + std::string(variable));
}

// The table that holds `v`'s key, created when the file has none. nullptr when the file has a
// non-table there: that mistake is the file loader's to report, with its line.
toml::table* holder_table(toml::table& root, std::string_view path) {
  toml::table* table = &root;
  while (!path.empty()) {
    const auto dot = path.find('.');
    const std::string_view name = path.substr(0, dot);
    path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
    auto [it, inserted] = table->emplace<toml::table>(name);
    table = it->second.as_table();
    if (!table) return nullptr;
  }
  return table;
}

// NAME_FILE: the file's content with one trailing newline removed (secrets mounted by Kubernetes or
// systemd credentials usually end in one; the secret itself does not).
Result<std::string> read_value_file(std::string_view variable, const std::string& path) {
  // Values are a line or a few; the cap keeps a wrong path (a log, a device) from eating memory.
  auto text = detail::read_file(path, 1u << 20);
  if (!text) {
    const int error = text.error().sys_errno;
    if (error == EFBIG) return Error{std::string(variable) + ": \"" + path + "\" is larger than 1 MiB (expected a value)"};
    return Error{std::string(variable) + ": cannot read \"" + path + "\": " + std::strerror(error), error};
  }
  if (text->ends_with('\n')) text->pop_back();
  if (text->ends_with('\r')) text->pop_back();
  return text;
}

struct Overlay {
  std::map<std::string, std::string, std::less<>> sources;   // key path → variable
  std::vector<std::string> warnings;
};

struct Setting {
  const Variable* variable;
  std::string name;    // as given: the key's variable, or its _FILE form
  std::string value;
};

Result<Overlay> apply_environment(toml::table& root, const Environment& env) {
  Overlay overlay;
  std::map<std::string_view, Setting> settings;   // by key variable; the last definition wins
  std::vector<std::string_view> names;
  for (const Variable& v : variables) names.push_back(v.name);
  for (const auto& [name, value] : env) {
    if (!name.starts_with(prefix) || name == config_variable) continue;
    // A name that is itself a key is that key, so MAILFERRY_TLS_CERT_FILE is tls.cert_file and not
    // a file holding a MAILFERRY_TLS_CERT that does not exist.
    if (const Variable* v = find_variable(name)) {
      auto [it, inserted] = settings.try_emplace(v->name, Setting{v, name, value});
      if (!inserted && it->second.name != name) {
        return Error{it->second.name + " and " + name + " are both set (expected only one of them)"};
      }
      it->second.value = value;
      continue;
    }
    const std::string_view base = std::string_view(name).substr(0, name.size() - file_suffix.size());
    const Variable* v = name.ends_with(file_suffix) ? find_variable(base) : nullptr;
    if (!v) {
      overlay.warnings.push_back(name + " is not a mailferry setting; ignored" + detail::did_you_mean(name, names));
      continue;
    }
    auto content = read_value_file(name, value);
    if (!content) return content.error();
    auto [it, inserted] = settings.try_emplace(v->name, Setting{v, name, *content});
    if (!inserted && it->second.name != name) {
      return Error{it->second.name + " and " + name + " are both set (expected only one of them)"};
    }
    it->second.value = *content;
  }
  // In the table's order, so the first malformed variable reported does not depend on environ's order.
  for (const Variable& v : variables) {
    auto it = settings.find(v.name);
    if (it == settings.end()) continue;
    auto holder = sourced_value(v, it->second.name, it->second.value);
    if (!holder) return holder.error();
    toml::table* table = holder_table(root, v.table);
    if (!table) continue;
    holder->get("v")->visit([&](auto& node) { table->insert_or_assign(v.key, std::move(node)); });
    overlay.sources[key_path(v)] = it->second.name;
  }
  return overlay;
}

Result<LoadedConfig> checked(toml::table& root, const std::string& source_name, const Environment& env,
                             const Error* missing_file) {
  auto overlay = apply_environment(root, env);
  if (!overlay) return overlay.error();
  if (missing_file && overlay->sources.empty()) return *missing_file;
  auto config = detail::config_from_document(root, source_name);
  if (!config) return config.error();
  config->env_sources = std::move(overlay->sources);
  return LoadedConfig{std::move(*config), std::move(overlay->warnings)};
}

const std::string* find_env(const Environment& env, std::string_view name) {
  for (const auto& [n, v] : env) {
    if (n == name) return &v;
  }
  return nullptr;
}

}  // namespace

std::string config_file_path(const std::string& flag, const Environment& env) {
  if (!flag.empty()) return flag;
  if (const std::string* path = find_env(env, config_variable); path && !path->empty()) return *path;
  return std::string(default_config_path);
}

Result<LoadedConfig> parse_config(std::string_view toml_text, const std::string& source_name,
                                  const Environment& env) {
  auto root = detail::parse_document(toml_text, source_name);
  if (!root) return root.error();
  return checked(*root, source_name, env, nullptr);
}

Result<LoadedConfig> load_config(const std::string& flag, const Environment& env) {
  const std::string path = config_file_path(flag, env);
  auto text = detail::read_config_text(path);
  if (text) return parse_config(*text, path, env);
  const std::string* named = find_env(env, config_variable);
  if (!flag.empty() || (named && !named->empty()) || text.error().sys_errno != ENOENT) return text.error();
  toml::table root;
  return checked(root, "", env, &text.error());
}

}  // namespace mailferry::config
