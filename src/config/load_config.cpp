// load_config.cpp: TOML → Config in two passes. The first walks the document, checking every key,
// type and value where it stands, so each mistake carries the line and column of the text at fault;
// the second (cross_check) applies the rules that relate several keys, on the finished Config, so the
// environment overlay can run it again without a document.
#include "mailferry/config/load_config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <toml++/toml.h>
#include <utility>
#include <vector>

#include "document.hpp"
#include "mailferry/config/units.hpp"

namespace mailferry::config {
namespace {

using KeyList = std::span<const std::string_view>;

constexpr std::array<std::string_view, 13> top_keys{
    "hostname", "spool_dir", "run_as", "max_message_size", "trusted_networks", "log_format", "listen",
    "tls",      "user",      "upstream", "rewrite",        "queue",            "metrics"};
constexpr std::array<std::string_view, 5> listen_keys{"address", "tls", "auth", "proxy_protocol",
                                                      "proxy_from"};
constexpr std::array<std::string_view, 2> tls_keys{"cert_file", "key_file"};
constexpr std::array<std::string_view, 3> user_keys{"name", "password_hash", "allowed_senders"};
constexpr std::array<std::string_view, 11> upstream_keys{
    "host", "ports",   "username", "password",        "password_file", "password_command",
    "auth", "ca_file", "connect_timeout", "max_rate", "oauth2"};
constexpr std::array<std::string_view, 2> port_keys{"port", "tls"};
constexpr std::array<std::string_view, 7> oauth2_keys{"provider",           "tenant",    "client_id",
                                                      "client_secret_file", "refresh_token_file",
                                                      "token_url",          "device_url"};
constexpr std::array<std::string_view, 2> rewrite_keys{"envelope_from", "header_from"};
constexpr std::array<std::string_view, 2> queue_keys{"retry_schedule", "max_age"};
constexpr std::array<std::string_view, 1> metrics_keys{"address"};

// Where a key belongs, to answer "connect_timeout" at top level with "it belongs in [upstream]".
struct Section {
  std::string_view name;
  KeyList keys;
};
constexpr std::array<Section, 9> sections{{{"", top_keys},
                                           {"[[listen]]", listen_keys},
                                           {"[tls]", tls_keys},
                                           {"[[user]]", user_keys},
                                           {"[upstream]", upstream_keys},
                                           {"[upstream.oauth2]", oauth2_keys},
                                           {"[rewrite]", rewrite_keys},
                                           {"[queue]", queue_keys},
                                           {"[metrics]", metrics_keys}}};

template <class E>
using Choices = std::span<const std::pair<std::string_view, E>>;

constexpr std::array<std::pair<std::string_view, ListenTls>, 3> listen_tls_choices{
    {{"starttls", ListenTls::starttls}, {"implicit", ListenTls::implicit}, {"none", ListenTls::none}}};
constexpr std::array<std::pair<std::string_view, ListenAuth>, 2> listen_auth_choices{
    {{"required", ListenAuth::required}, {"none", ListenAuth::none}}};
constexpr std::array<std::pair<std::string_view, UpstreamTls>, 3> upstream_tls_choices{
    {{"starttls", UpstreamTls::starttls},
     {"implicit", UpstreamTls::implicit},
     {"none", UpstreamTls::none}}};
constexpr std::array<std::pair<std::string_view, UpstreamAuth>, 4> upstream_auth_choices{
    {{"auto", UpstreamAuth::auto_},
     {"plain", UpstreamAuth::plain},
     {"login", UpstreamAuth::login},
     {"xoauth2", UpstreamAuth::xoauth2}}};
constexpr std::array<std::pair<std::string_view, LogFormat>, 2> log_format_choices{
    {{"text", LogFormat::text}, {"json", LogFormat::json}}};
constexpr std::array<std::pair<std::string_view, OAuthProvider>, 3> provider_choices{
    {{"microsoft", OAuthProvider::microsoft},
     {"google", OAuthProvider::google},
     {"custom", OAuthProvider::custom}}};

constexpr std::string_view duration_example = R"(a duration string like "30s")";
constexpr std::string_view mask_text =
    R"(is "********", the mask check-config prints (expected the real secret))";

// ---------------------------------------------------------------------------------------------------
// Positions and the report

struct Where {
  std::uint32_t line = 0;   // 0 = unknown (a Config that did not come from a document)
  std::uint32_t column = 0;
  std::string variable;     // set when the value came from this environment variable
};

Where where_of(const toml::source_region& r) {
  Where w{r.begin.line, r.begin.column, {}};
  if (r.path && r.path->starts_with(detail::env_origin)) w.variable = r.path->substr(detail::env_origin.size());
  return w;
}

// Location keys are paths with indices ("listen#1.tls"); messages show them without ("listen.tls"),
// since the line number already says which entry.
using Locations = std::map<std::string, Where, std::less<>>;

Where locate(const Locations& locations, std::initializer_list<std::string_view> keys) {
  for (std::string_view key : keys) {
    auto it = locations.find(key);
    if (it != locations.end() && it->second.line != 0) return it->second;
  }
  return {};
}

std::string display_path(std::string_view key) {
  std::string out;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '#') {
      while (i + 1 < key.size() && key[i + 1] >= '0' && key[i + 1] <= '9') ++i;
      continue;
    }
    out += key[i];
  }
  return out;
}

struct Problem {
  Where where;
  std::string text;
};

class Report {
 public:
  void add(Where where, std::string text) { problems_.push_back({where, std::move(text)}); }
  bool empty() const { return problems_.empty(); }

  // The mistake nearest the start of the file: the one a user reading top-down meets first.
  // A variable's value overrides the file, so its mistakes come before the file's; problems without
  // a position come last, in the order they were found.
  Error first(const std::string& source) const {
    auto rank = [](const Problem& p) {
      return std::tuple{p.where.variable.empty(), p.where.line == 0 ? UINT32_MAX : p.where.line,
                        p.where.column};
    };
    const Problem& p = *std::min_element(
        problems_.begin(), problems_.end(),
        [&](const Problem& a, const Problem& b) { return rank(a) < rank(b); });
    std::string out;
    if (!p.where.variable.empty()) {
      out = p.where.variable + ": ";
    } else if (!source.empty()) {
      out = source;
      if (p.where.line != 0) out += ":" + std::to_string(p.where.line) + ":" + std::to_string(p.where.column);
      out += ": ";
    }
    out += p.text;
    return Error{out};
  }

 private:
  std::vector<Problem> problems_;
};

// ---------------------------------------------------------------------------------------------------
// Text helpers

// A user's text inside a one-line message: quoted, with control characters escaped.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xF];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so "listne" is 1 from
// "listen" — the commonest typo costs one edit, not two.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

// Closer than the word's own length, too, so "x" does not suggest "tls".
std::string detail::did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (std::string_view c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance && d < word.size()) {
      best = c;
      best_distance = d;
    }
  }
  if (best.empty()) return {};
  return "; did you mean " + quoted(best) + "?";
}

namespace {

using detail::did_you_mean;

std::string join(KeyList words, bool quote) {
  std::string out;
  for (std::string_view w : words) {
    if (!out.empty()) out += ", ";
    out += quote ? quoted(w) : std::string(w);
  }
  return out;
}

std::string_view type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::none: return "nothing";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
  }
  return "an unknown type";
}

bool has_space_or_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7F;
  });
}

// "local@domain", or "@domain" when `domain_only_ok` (allowed_senders): enough to catch a missing
// "@" or a stray space; the SMTP layer does the full RFC 5321 parse.
bool looks_like_address(std::string_view s, bool domain_only_ok) {
  const auto at = s.rfind('@');
  if (at == std::string_view::npos || at + 1 == s.size()) return false;
  if (at == 0 && !domain_only_ok) return false;
  return !has_space_or_control(s) && s.find_first_of("<>") == std::string_view::npos;
}

std::string system_hostname() {
  char buffer[HOST_NAME_MAX + 1] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "localhost";
  return buffer;
}

std::vector<Network> default_trusted_networks() {
  return {parse_network("127.0.0.0/8").value(), parse_network("::1/128").value()};
}

Listen default_listener() {
  Listen l = parse_listen_address("127.0.0.1:2525").value();
  l.tls = ListenTls::none;
  l.auth = ListenAuth::none;
  return l;
}

// ---------------------------------------------------------------------------------------------------
// Pass one: the document

class Parser {
 public:
  Config parse(const toml::table& root);

  Report report;
  Locations locations;

 private:
  // Keys and types
  void check_keys(const toml::table& table, std::string_view section, KeyList known);
  const toml::node* field(const toml::table& table, std::string_view key, const std::string& path);
  void wrong_type(const toml::node& node, const std::string& path, std::string_view expected);
  void bad_value(const toml::node& node, const std::string& path, const std::string& text);
  void bad_key(const toml::node& node, const std::string& path, const std::string& predicate);

  // Typed reads: nullopt when absent or wrong (the wrong case is reported).
  std::optional<std::string> string_field(const toml::table& t, std::string_view key,
                                          const std::string& path, bool allow_empty);
  std::optional<bool> bool_field(const toml::table& t, std::string_view key, const std::string& path);
  std::optional<std::vector<std::string>> strings_field(const toml::table& t, std::string_view key,
                                                        const std::string& path);
  template <class E>
  std::optional<E> enum_value(const toml::node& node, const std::string& path, Choices<E> choices);
  template <class E>
  std::optional<E> enum_field(const toml::table& t, std::string_view key, const std::string& path,
                              Choices<E> choices);
  std::optional<Millis> duration_field(const toml::table& t, std::string_view key,
                                       const std::string& path);
  std::optional<std::vector<Network>> networks_field(const toml::table& t, std::string_view key,
                                                     const std::string& path);
  const toml::table* table_field(const toml::table& t, std::string_view key, const std::string& path);
  const toml::array* tables_field(const toml::table& t, std::string_view key, const std::string& path);

  // Sections
  void parse_top(const toml::table& root, Config& c);
  void parse_listen(const toml::table& t, const std::string& base, Listen& out);
  void parse_user(const toml::table& t, const std::string& base, User& out);
  void parse_upstream(const toml::table& t, Upstream& out);
  void parse_ports(const toml::node& node, std::vector<UpstreamPort>& out);
  void parse_oauth2(const toml::table& t, OAuth2& out);
  void parse_queue(const toml::table& t, Queue& out);
};

void Parser::check_keys(const toml::table& table, std::string_view section, KeyList known) {
  for (auto&& [key, value] : table) {
    const std::string_view name = key.str();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string text = "unknown key " + quoted(name);
    if (!section.empty()) text += " in " + std::string(section);
    std::string hint = did_you_mean(name, known);
    if (hint.empty()) {
      for (const Section& s : sections) {
        if (s.name == section) continue;
        if (std::find(s.keys.begin(), s.keys.end(), name) == s.keys.end()) continue;
        hint = "; it belongs " +
               (s.name.empty() ? std::string("at the top level") : "in " + std::string(s.name));
        break;
      }
    }
    report.add(where_of(key.source()), text + hint + " (expected one of: " + join(known, false) + ")");
  }
}

const toml::node* Parser::field(const toml::table& table, std::string_view key, const std::string& path) {
  const toml::node* node = table.get(key);
  if (node) locations[path] = where_of(node->source());
  return node;
}

void Parser::wrong_type(const toml::node& node, const std::string& path, std::string_view expected) {
  // "listen.proxy_from[]" is an element: say so in words.
  std::string what = display_path(path);
  if (what.size() > 2 && what.substr(what.size() - 2) == "[]") {
    what = "an entry of " + what.substr(0, what.size() - 2);
  }
  report.add(where_of(node.source()), "wrong type for " + what + ": " +
                                          std::string(type_name(node.type())) + " (expected " +
                                          std::string(expected) + ")");
}

// "<path>: <what is wrong with the value>", for texts that start with the value itself.
void Parser::bad_value(const toml::node& node, const std::string& path, const std::string& text) {
  report.add(where_of(node.source()), display_path(path) + ": " + text);
}

// "<path> <predicate>", for texts about the key ("is empty", "has no command").
void Parser::bad_key(const toml::node& node, const std::string& path, const std::string& predicate) {
  report.add(where_of(node.source()), display_path(path) + " " + predicate);
}

std::optional<std::string> Parser::string_field(const toml::table& t, std::string_view key,
                                                const std::string& path, bool allow_empty) {
  const toml::node* node = field(t, key, path);
  if (!node) return std::nullopt;
  const auto* s = node->as_string();
  if (!s) {
    wrong_type(*node, path, "a string");
    return std::nullopt;
  }
  if (!allow_empty && s->get().empty()) {
    bad_key(*node, path, "is empty (expected a value, or remove the key for the default)");
    return std::nullopt;
  }
  return s->get();
}

std::optional<bool> Parser::bool_field(const toml::table& t, std::string_view key, const std::string& path) {
  const toml::node* node = field(t, key, path);
  if (!node) return std::nullopt;
  if (const auto* b = node->as_boolean()) return b->get();
  wrong_type(*node, path, "true or false");
  return std::nullopt;
}

std::optional<std::vector<std::string>> Parser::strings_field(const toml::table& t, std::string_view key,
                                                              const std::string& path) {
  const toml::node* node = field(t, key, path);
  if (!node) return std::nullopt;
  const auto* array = node->as_array();
  if (!array) {
    wrong_type(*node, path, "an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const toml::node& element : *array) {
    if (const auto* s = element.as_string()) {
      out.push_back(s->get());
    } else {
      wrong_type(element, path + "[]", "a string");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

template <class E>
std::optional<E> Parser::enum_value(const toml::node& node, const std::string& path, Choices<E> choices) {
  std::vector<std::string_view> names;
  for (const auto& choice : choices) names.push_back(choice.first);
  const std::string expected = "expected one of: " + join(names, true);
  const auto* s = node.as_string();
  if (!s) {
    wrong_type(node, path, expected.substr(std::string_view("expected ").size()));
    return std::nullopt;
  }
  for (const auto& [name, value] : choices) {
    if (name == s->get()) return value;
  }
  bad_value(node, path, "unknown value " + quoted(s->get()) + did_you_mean(s->get(), names) + " (" +
                            expected + ")");
  return std::nullopt;
}

template <class E>
std::optional<E> Parser::enum_field(const toml::table& t, std::string_view key, const std::string& path,
                                    Choices<E> choices) {
  const toml::node* node = field(t, key, path);
  if (!node) return std::nullopt;
  return enum_value(*node, path, choices);
}

std::optional<Millis> Parser::duration_field(const toml::table& t, std::string_view key,
                                             const std::string& path) {
  const toml::node* node = field(t, key, path);
  if (!node) return std::nullopt;
  const auto* s = node->as_string();
  if (!s) {
    wrong_type(*node, path, duration_example);
    return std::nullopt;
  }
  auto d = parse_duration(s->get());
  if (!d) {
    bad_value(*node, path, d.error().message);
    return std::nullopt;
  }
  if (d->count() == 0) {
    bad_value(*node, path, quoted(s->get()) + " is zero (expected more than 0s)");
    return std::nullopt;
  }
  return *d;
}

std::optional<std::vector<Network>> Parser::networks_field(const toml::table& t, std::string_view key,
                                                           const std::string& path) {
  const toml::node* node = field(t, key, path);
  if (!node) return std::nullopt;
  const auto* array = node->as_array();
  if (!array) {
    wrong_type(*node, path, R"(an array of networks, like ["10.0.0.0/8"])");
    return std::nullopt;
  }
  std::vector<Network> out;
  bool ok = true;
  for (const toml::node& element : *array) {
    const auto* s = element.as_string();
    if (!s) {
      wrong_type(element, path + "[]", R"(a network string like "10.0.0.0/8")");
      ok = false;
      continue;
    }
    auto network = parse_network(s->get());
    if (!network) {
      bad_value(element, path, network.error().message);
      ok = false;
      continue;
    }
    out.push_back(*network);
  }
  if (!ok) return std::nullopt;
  return out;
}

const toml::table* Parser::table_field(const toml::table& t, std::string_view key, const std::string& path) {
  const toml::node* node = field(t, key, path);
  if (!node) return nullptr;
  if (const auto* table = node->as_table()) return table;
  wrong_type(*node, path, "a table [" + display_path(path) + "]");
  return nullptr;
}

const toml::array* Parser::tables_field(const toml::table& t, std::string_view key, const std::string& path) {
  const toml::node* node = field(t, key, path);
  if (!node) return nullptr;
  if (node->is_table()) {
    report.add(where_of(node->source()),
               "[" + path + "] is a single table (expected [[" + path + "]], with double brackets)");
    return nullptr;
  }
  const auto* array = node->as_array();
  if (!array) {
    wrong_type(*node, path, "[[" + path + "]] tables");
    return nullptr;
  }
  bool ok = true;
  for (const toml::node& element : *array) {
    if (!element.is_table()) {
      wrong_type(element, path + "[]", "a table, as in [[" + path + "]]");
      ok = false;
    }
  }
  return ok ? array : nullptr;
}

Config Parser::parse(const toml::table& root) {
  Config c;
  check_keys(root, "", top_keys);
  parse_top(root, c);

  if (const toml::array* listens = tables_field(root, "listen", "listen")) {
    for (std::size_t i = 0; i < listens->size(); ++i) {
      Listen l;
      parse_listen(*listens->get(i)->as_table(), "listen#" + std::to_string(i), l);
      c.listen.push_back(std::move(l));
    }
  } else if (!root.contains("listen")) {
    c.listen.push_back(default_listener());
  }

  if (const toml::table* t = table_field(root, "tls", "tls")) {
    check_keys(*t, "[tls]", tls_keys);
    Tls tls;
    tls.cert_file = string_field(*t, "cert_file", "tls.cert_file", false).value_or("");
    tls.key_file = string_field(*t, "key_file", "tls.key_file", false).value_or("");
    c.tls = tls;
  }

  if (const toml::array* users = tables_field(root, "user", "user")) {
    for (std::size_t i = 0; i < users->size(); ++i) {
      User u;
      parse_user(*users->get(i)->as_table(), "user#" + std::to_string(i), u);
      c.users.push_back(std::move(u));
    }
  }

  if (const toml::table* t = table_field(root, "upstream", "upstream")) parse_upstream(*t, c.upstream);

  if (const toml::table* t = table_field(root, "rewrite", "rewrite")) {
    check_keys(*t, "[rewrite]", rewrite_keys);
    Rewrite r;
    for (auto [key, target] :
         {std::pair{"envelope_from", &r.envelope_from}, std::pair{"header_from", &r.header_from}}) {
      const std::string path = std::string("rewrite.") + key;
      auto v = string_field(*t, key, path, true);
      if (!v) continue;
      if (!v->empty() && !looks_like_address(*v, false)) {
        bad_value(*t->get(key), path, quoted(*v) + R"( is not an address (expected local@domain, like "relay@example.com"))");
        continue;
      }
      *target = *v;
    }
    c.rewrite = r;
  }

  if (const toml::table* t = table_field(root, "queue", "queue")) parse_queue(*t, c.queue);

  if (const toml::table* t = table_field(root, "metrics", "metrics")) {
    check_keys(*t, "[metrics]", metrics_keys);
    if (auto v = string_field(*t, "address", "metrics.address", true); v && !v->empty()) {
      auto address = parse_listen_address(*v);
      if (address) {
        c.metrics.address = *v;
      } else {
        bad_value(*t->get("address"), "metrics.address", address.error().message);
      }
    }
  }
  return c;
}

void Parser::parse_top(const toml::table& root, Config& c) {
  if (auto v = string_field(root, "hostname", "hostname", false)) {
    if (has_space_or_control(*v)) {
      bad_value(*root.get("hostname"), "hostname",
                quoted(*v) + R"( contains a space or control character (expected a host name like "relay.example.lan"))");
    } else {
      c.hostname = *v;
    }
  } else if (!root.contains("hostname")) {
    c.hostname = system_hostname();
  }
  if (auto v = string_field(root, "spool_dir", "spool_dir", false)) c.spool_dir = *v;
  if (auto v = string_field(root, "run_as", "run_as", false)) c.run_as = *v;

  if (const toml::node* node = field(root, "max_message_size", "max_message_size")) {
    std::optional<std::uint64_t> size;
    if (const auto* s = node->as_string()) {
      auto parsed = parse_size(s->get());
      if (parsed) {
        size = *parsed;
        c.max_message_size_text = s->get();
      } else {
        bad_value(*node, "max_message_size", parsed.error().message);
      }
    } else if (const auto* i = node->as_integer()) {
      if (i->get() < 0) {
        bad_key(*node, "max_message_size", "is negative (expected a size like \"25MiB\")");
      } else {
        size = static_cast<std::uint64_t>(i->get());
        c.max_message_size_text = format_size(*size);
      }
    } else {
      wrong_type(*node, "max_message_size", R"(a size string like "25MiB", or a number of bytes)");
    }
    if (size && *size == 0) {
      bad_key(*node, "max_message_size", "is zero (expected a size like \"25MiB\")");
    } else if (size) {
      c.max_message_size = *size;
    }
  }

  if (auto v = networks_field(root, "trusted_networks", "trusted_networks")) {
    c.trusted_networks = *v;
  } else if (!root.contains("trusted_networks")) {
    c.trusted_networks = default_trusted_networks();
  }
  if (auto v = enum_field<LogFormat>(root, "log_format", "log_format", log_format_choices)) c.log_format = *v;
}

void Parser::parse_listen(const toml::table& t, const std::string& base, Listen& out) {
  check_keys(t, "[[listen]]", listen_keys);
  locations[base] = where_of(t.source());
  const std::string address_path = base + ".address";
  if (auto v = string_field(t, "address", address_path, false)) {
    auto parsed = parse_listen_address(*v);
    if (parsed) {
      out.address = parsed->address;
      out.host = parsed->host;
      out.port = parsed->port;
    } else {
      bad_value(*t.get("address"), address_path, parsed.error().message);
    }
  } else if (!t.contains("address")) {
    report.add(where_of(t.source()),
               R"([[listen]] has no address (expected address = "host:port", like "127.0.0.1:587"))");
  }
  if (auto v = enum_field<ListenTls>(t, "tls", base + ".tls", listen_tls_choices)) out.tls = *v;
  if (auto v = enum_field<ListenAuth>(t, "auth", base + ".auth", listen_auth_choices)) out.auth = *v;
  if (auto v = bool_field(t, "proxy_protocol", base + ".proxy_protocol")) out.proxy_protocol = *v;
  if (auto v = networks_field(t, "proxy_from", base + ".proxy_from")) out.proxy_from = *v;
}

void Parser::parse_user(const toml::table& t, const std::string& base, User& out) {
  check_keys(t, "[[user]]", user_keys);
  locations[base] = where_of(t.source());
  if (auto v = string_field(t, "name", base + ".name", false)) {
    // ':' would make the name impossible to give in MAILFERRY_USERS ("name:hash").
    if (has_space_or_control(*v) || v->find(':') != std::string::npos) {
      bad_value(*t.get("name"), base + ".name",
                quoted(*v) + R"( contains a space, control character or ":" (expected a login name like "wordpress"))");
    } else {
      out.name = *v;
    }
  }
  if (const toml::node* node = field(t, "password_hash", base + ".password_hash")) {
    // The value is never echoed: a plaintext password put here by mistake must not reach a log.
    const auto* s = node->as_string();
    if (!s) {
      wrong_type(*node, base + ".password_hash", "a string");
    } else if (s->get().empty()) {
      bad_key(*node, base + ".password_hash",
              "is empty (expected the crypt(3) hash printed by `mailferry passwd`)");
    } else if (s->get() == masked_secret) {
      bad_key(*node, base + ".password_hash", std::string(mask_text));
    } else if (s->get().front() != '$' || has_space_or_control(s->get())) {
      bad_key(*node, base + ".password_hash",
              R"(is not a crypt(3) hash (expected the "$y$..." or "$6$..." line printed by `mailferry passwd`, not the password itself))");
    } else {
      out.password_hash = s->get();
    }
  }
  if (auto v = strings_field(t, "allowed_senders", base + ".allowed_senders")) {
    const toml::node& node = *t.get("allowed_senders");
    if (v->empty()) {
      bad_key(node, base + ".allowed_senders",
              "is empty (expected at least one address, or remove the key to allow any sender)");
    }
    for (const std::string& sender : *v) {
      if (!looks_like_address(sender, true)) {
        bad_value(node, base + ".allowed_senders",
                  quoted(sender) + R"( is not an address or domain (expected "user@example.com" or "@example.com"))");
      }
    }
    out.allowed_senders = *v;
  }
}

void Parser::parse_upstream(const toml::table& t, Upstream& out) {
  check_keys(t, "[upstream]", upstream_keys);
  locations["upstream"] = where_of(t.source());
  if (auto v = string_field(t, "host", "upstream.host", false)) {
    std::array<unsigned char, 16> buffer{};
    const bool v6_literal = inet_pton(AF_INET6, v->c_str(), buffer.data()) == 1;
    if (has_space_or_control(*v) || v->find('/') != std::string::npos) {
      bad_value(*t.get("host"), "upstream.host",
                quoted(*v) + R"( is not a host name (expected a name like "smtp.example.com", without scheme or path))");
    } else if (!v6_literal && v->find(':') != std::string::npos) {
      bad_value(*t.get("host"), "upstream.host",
                quoted(*v) + R"( contains a port (expected only the host name; ports go in upstream.ports))");
    } else {
      out.host = *v;
    }
  }
  if (const toml::node* node = field(t, "ports", "upstream.ports")) parse_ports(*node, out.ports);
  if (auto v = string_field(t, "username", "upstream.username", false)) out.username = *v;
  if (const toml::node* node = field(t, "password", "upstream.password")) {
    const auto* s = node->as_string();   // never echoed, like password_hash
    if (!s) {
      wrong_type(*node, "upstream.password", "a string");
    } else if (s->get().empty()) {
      bad_key(*node, "upstream.password", "is empty (expected the password, or remove the key)");
    } else if (s->get() == masked_secret) {
      bad_key(*node, "upstream.password", std::string(mask_text));
    } else {
      out.password = Secret(s->get());
    }
  }
  if (auto v = string_field(t, "password_file", "upstream.password_file", false)) out.password_file = *v;
  if (auto v = strings_field(t, "password_command", "upstream.password_command")) {
    if (v->empty() || v->front().empty()) {
      bad_key(*t.get("password_command"), "upstream.password_command",
              R"(has no command (expected the program and its arguments, like ["pass", "show", "smtp"]))");
    } else {
      out.password_command = *v;
    }
  }
  if (auto v = enum_field<UpstreamAuth>(t, "auth", "upstream.auth", upstream_auth_choices)) out.auth = *v;
  if (auto v = string_field(t, "ca_file", "upstream.ca_file", true)) out.ca_file = *v;
  if (auto v = duration_field(t, "connect_timeout", "upstream.connect_timeout")) out.connect_timeout = *v;
  if (auto v = string_field(t, "max_rate", "upstream.max_rate", true); v && !v->empty()) {
    auto rate = parse_rate(*v);
    if (rate) {
      out.max_rate = *v;
      out.max_rate_count = rate->first;
      out.max_rate_period = rate->second;
    } else {
      bad_value(*t.get("max_rate"), "upstream.max_rate", rate.error().message);
    }
  }
  if (const toml::table* o = table_field(t, "oauth2", "upstream.oauth2")) {
    OAuth2 oauth2;
    parse_oauth2(*o, oauth2);
    out.oauth2 = oauth2;
  }
}

void Parser::parse_ports(const toml::node& node, std::vector<UpstreamPort>& out) {
  constexpr std::string_view expected = R"(a port number, or a table like { port = 2525, tls = "implicit" })";
  const auto* array = node.as_array();
  if (!array) {
    wrong_type(node, "upstream.ports", R"(an array of ports, like [587, 2525, 465])");
    return;
  }
  std::vector<UpstreamPort> ports;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const toml::node* port_node = &element;
    const toml::table* table = element.as_table();
    if (table) {
      check_keys(*table, "an upstream.ports entry", port_keys);
      port_node = table->get("port");
      if (!port_node) {
        report.add(where_of(element.source()),
                   R"(upstream.ports entry has no port (expected { port = 2525, tls = "implicit" }))");
        continue;
      }
    }
    const auto* number = port_node->as_integer();
    if (!number) {
      wrong_type(*port_node, "upstream.ports[]", table ? "a port number" : expected);
      continue;
    }
    if (number->get() < 1 || number->get() > 65535) {
      bad_value(*port_node, "upstream.ports",
                std::to_string(number->get()) + " is not a port (expected 1 to 65535)");
      continue;
    }
    UpstreamPort port;
    port.port = static_cast<std::uint16_t>(number->get());
    // 465 is the one port registered for implicit TLS submission (RFC 8314 §7.3).
    port.tls = port.port == 465 ? UpstreamTls::implicit : UpstreamTls::starttls;
    if (table && table->contains("tls")) {
      auto tls = enum_value<UpstreamTls>(*table->get("tls"), "upstream.ports.tls", upstream_tls_choices);
      if (!tls) continue;
      port.tls = *tls;
    }
    if (std::find(ports.begin(), ports.end(), port) != ports.end()) {
      bad_key(element, "upstream.ports",
              "lists port " + std::to_string(port.port) + " with tls = \"" + std::string(to_string(port.tls)) +
                  "\" twice (expected each port once)");
      continue;
    }
    ports.push_back(port);
  }
  if (array->empty()) {
    bad_key(node, "upstream.ports", "is empty (expected at least one port, like [587, 2525, 465])");
  }
  out = ports;
}

void Parser::parse_oauth2(const toml::table& t, OAuth2& out) {
  check_keys(t, "[upstream.oauth2]", oauth2_keys);
  locations["upstream.oauth2"] = where_of(t.source());
  if (auto v = enum_field<OAuthProvider>(t, "provider", "upstream.oauth2.provider", provider_choices)) {
    out.provider = *v;
  } else if (!t.contains("provider")) {
    report.add(where_of(t.source()),
               R"([upstream.oauth2] has no provider (expected provider = "microsoft", "google" or "custom"))");
  }
  if (auto v = string_field(t, "tenant", "upstream.oauth2.tenant", false)) out.tenant = *v;
  if (auto v = string_field(t, "client_id", "upstream.oauth2.client_id", false)) out.client_id = *v;
  if (auto v = string_field(t, "client_secret_file", "upstream.oauth2.client_secret_file", true)) {
    out.client_secret_file = *v;
  }
  if (auto v = string_field(t, "refresh_token_file", "upstream.oauth2.refresh_token_file", false)) {
    out.refresh_token_file = *v;
  }
  for (auto [key, target] :
       {std::pair{"token_url", &out.token_url}, std::pair{"device_url", &out.device_url}}) {
    const std::string path = std::string("upstream.oauth2.") + key;
    auto v = string_field(t, key, path, false);
    if (!v) continue;
    if (v->rfind("https://", 0) != 0 && v->rfind("http://", 0) != 0) {
      bad_value(*t.get(key), path, quoted(*v) + R"( is not a URL (expected "https://..."))");
      continue;
    }
    *target = *v;
  }
  // The default tenant "common" cannot be told apart from an explicit one in OAuth2, so this check
  // lives here, where the key's presence is known.
  if (t.contains("tenant") && out.provider != OAuthProvider::microsoft && t.contains("provider")) {
    bad_key(*t.get("tenant"), "upstream.oauth2.tenant",
            "is only used with provider = \"microsoft\" (expected no tenant with provider = \"" +
                std::string(to_string(out.provider)) + "\")");
  }
}

void Parser::parse_queue(const toml::table& t, Queue& out) {
  check_keys(t, "[queue]", queue_keys);
  if (const toml::node* node = field(t, "retry_schedule", "queue.retry_schedule")) {
    const auto* array = node->as_array();
    if (!array) {
      wrong_type(*node, "queue.retry_schedule", R"(an array of durations, like ["30s", "2m", "10m"])");
    } else if (array->empty()) {
      bad_key(*node, "queue.retry_schedule",
              R"(is empty (expected at least one interval, like ["30s", "2m", "10m"]))");
    } else {
      std::vector<Millis> schedule;
      for (const toml::node& element : *array) {
        const auto* s = element.as_string();
        if (!s) {
          wrong_type(element, "queue.retry_schedule[]", duration_example);
          continue;
        }
        auto d = parse_duration(s->get());
        if (!d) {
          bad_value(element, "queue.retry_schedule", d.error().message);
        } else if (d->count() == 0) {
          bad_value(element, "queue.retry_schedule", quoted(s->get()) + " is zero (expected more than 0s)");
        } else {
          schedule.push_back(*d);
        }
      }
      if (schedule.size() == array->size()) out.retry_schedule = schedule;
    }
  }
  if (auto d = duration_field(t, "max_age", "queue.max_age")) {
    if (d->count() % 1000 != 0) {
      bad_value(*t.get("max_age"), "queue.max_age",
                quoted(t.get("max_age")->as_string()->get()) +
                    R"( is not a whole number of seconds (expected a duration like "5d"))");
    } else {
      out.max_age = std::chrono::duration_cast<Seconds>(*d);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Pass two: rules across keys

void cross_check(const Config& c, const Locations& loc, Report& r) {
  for (std::size_t i = 0; i < c.listen.size(); ++i) {
    const Listen& l = c.listen[i];
    const std::string base = "listen#" + std::to_string(i);
    const std::string name = "listener " + quoted(l.address);
    if (l.tls != ListenTls::none && !c.tls) {
      r.add(locate(loc, {base + ".tls", base}),
            name + " has tls = \"" + std::string(to_string(l.tls)) +
                "\" but there is no [tls] section (expected [tls] with cert_file and key_file)");
    }
    if (l.tls == ListenTls::none && l.auth == ListenAuth::required) {
      r.add(locate(loc, {base + ".auth", base + ".tls", base}),
            name + " has tls = \"none\" and auth = \"required\": AUTH is only offered over TLS, so it "
                   "could never accept mail (expected auth = \"none\", or tls = \"starttls\")");
    }
    if (l.proxy_protocol && l.proxy_from.empty()) {
      r.add(locate(loc, {base + ".proxy_protocol", base}),
            name + R"( has proxy_protocol = true but no proxy_from (expected proxy_from = ["10.0.0.0/8"], the load balancers' networks))");
    }
    if (!l.proxy_protocol && !l.proxy_from.empty()) {
      r.add(locate(loc, {base + ".proxy_from", base}),
            name + " has proxy_from but not proxy_protocol = true (expected proxy_protocol = true, or no proxy_from)");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (c.listen[j].host == l.host && c.listen[j].port == l.port) {
        r.add(locate(loc, {base + ".address", base}), name + " is given twice (expected each address once)");
      }
    }
  }

  if (c.tls) {
    if (c.tls->cert_file.empty()) {
      r.add(locate(loc, {"tls"}), R"([tls] has no cert_file (expected cert_file = "/etc/mailferry/cert.pem"))");
    }
    if (c.tls->key_file.empty()) {
      r.add(locate(loc, {"tls"}), R"([tls] has no key_file (expected key_file = "/etc/mailferry/key.pem"))");
    }
  }

  for (std::size_t i = 0; i < c.users.size(); ++i) {
    const User& u = c.users[i];
    const std::string base = "user#" + std::to_string(i);
    if (u.name.empty()) {
      r.add(locate(loc, {base}), R"([[user]] has no name (expected name = "wordpress"))");
    } else if (u.password_hash.empty()) {
      r.add(locate(loc, {base}), "[[user]] " + quoted(u.name) +
                                     " has no password_hash (expected the hash printed by `mailferry passwd`)");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (!u.name.empty() && c.users[j].name == u.name) {
        r.add(locate(loc, {base + ".name", base}),
              "[[user]] " + quoted(u.name) + " is defined twice (expected each name once)");
      }
    }
  }

  const Upstream& u = c.upstream;
  if (u.host.empty()) {
    r.add(locate(loc, {"upstream"}), R"(upstream.host is required (expected host = "smtp.example.com" under [upstream]))");
  }
  if (u.ports.empty()) {
    r.add(locate(loc, {"upstream.ports", "upstream"}),
          "upstream.ports is empty (expected at least one port, like [587, 2525, 465])");
  }
  std::vector<std::string_view> sources;
  if (!u.password.empty()) sources.push_back("password");
  if (!u.password_file.empty()) sources.push_back("password_file");
  if (!u.password_command.empty()) sources.push_back("password_command");
  auto source_where = [&](std::string_view name) {
    return locate(loc, {"upstream." + std::string(name), "upstream"});
  };
  if (sources.size() > 1) {
    r.add(source_where(sources[1]), "upstream." + std::string(sources[0]) + " and upstream." +
                                        std::string(sources[1]) +
                                        " are both set (expected only one of password, password_file, password_command)");
  }
  if (u.oauth2) {
    const OAuth2& o = *u.oauth2;
    const Where at = locate(loc, {"upstream.oauth2", "upstream"});
    if (u.auth != UpstreamAuth::xoauth2) {
      r.add(locate(loc, {"upstream.auth", "upstream.oauth2", "upstream"}),
            "[upstream.oauth2] is set but upstream.auth = \"" + std::string(to_string(u.auth)) +
                "\" (expected auth = \"xoauth2\", or no [upstream.oauth2])");
    }
    if (!sources.empty()) {
      r.add(source_where(sources[0]), "upstream." + std::string(sources[0]) +
                                          " is set, but [upstream.oauth2] provides the token (expected one of them)");
    }
    if (o.client_id.empty()) {
      r.add(at, "[upstream.oauth2] has no client_id (expected the application id registered with the provider)");
    }
    if (o.refresh_token_file.empty()) {
      r.add(at, R"([upstream.oauth2] has no refresh_token_file (expected a writable path, like "/var/lib/mailferry/oauth.refresh"))");
    }
    const bool custom = o.provider == OAuthProvider::custom;
    for (auto [key, value] : {std::pair{"token_url", &o.token_url}, std::pair{"device_url", &o.device_url}}) {
      if (custom && value->empty()) {
        r.add(at, "[upstream.oauth2] provider = \"custom\" needs " + std::string(key) +
                      " (expected the provider's https:// endpoint)");
      } else if (!custom && !value->empty()) {
        r.add(locate(loc, {"upstream.oauth2." + std::string(key), "upstream.oauth2"}),
              "upstream.oauth2." + std::string(key) + " is only used with provider = \"custom\" (expected no " +
                  std::string(key) + " with provider = \"" + std::string(to_string(o.provider)) + "\")");
      }
    }
  } else if (u.auth == UpstreamAuth::xoauth2 && sources.empty()) {
    r.add(locate(loc, {"upstream.auth", "upstream"}),
          R"(upstream.auth = "xoauth2" needs a token (expected [upstream.oauth2], or password_command printing an access token))");
  }
  const bool has_secret = !sources.empty() || u.oauth2.has_value();
  if (u.username.empty() && has_secret) {
    r.add(sources.empty() ? locate(loc, {"upstream.oauth2", "upstream"}) : source_where(sources[0]),
          "upstream." + std::string(sources.empty() ? "oauth2" : sources[0]) +
              R"( is set but upstream.username is not (expected username = "..."))");
  } else if (u.username.empty() && u.auth != UpstreamAuth::auto_ && u.auth != UpstreamAuth::xoauth2) {
    r.add(locate(loc, {"upstream.auth", "upstream"}),
          "upstream.auth = \"" + std::string(to_string(u.auth)) +
              R"(" needs credentials (expected username and password, password_file or password_command))");
  } else if (!u.username.empty() && !has_secret && u.auth != UpstreamAuth::xoauth2) {
    r.add(locate(loc, {"upstream.username", "upstream"}),
          "upstream.username is set but no password (expected password, password_file or password_command)");
  }
  if (u.connect_timeout.count() <= 0) {
    r.add(locate(loc, {"upstream.connect_timeout"}),
          "upstream.connect_timeout is zero (expected more than 0s)");
  }

  if (c.queue.retry_schedule.empty()) {
    r.add(locate(loc, {"queue.retry_schedule"}),
          R"(queue.retry_schedule is empty (expected at least one interval, like ["30s", "2m"]))");
  }
  if (c.queue.max_age.count() <= 0) {
    r.add(locate(loc, {"queue.max_age"}), R"(queue.max_age is zero (expected a duration like "5d"))");
  }
  if (c.max_message_size == 0) {
    r.add(locate(loc, {"max_message_size"}), R"(max_message_size is zero (expected a size like "25MiB"))");
  }
}

std::string one_line(std::string_view text) {
  std::string out(text);
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\r', ' ');
  return out;
}

}  // namespace

Result<toml::table> detail::parse_document(std::string_view toml_text, const std::string& source_name) {
  try {
    return toml::parse(toml_text, std::string_view(source_name));
  } catch (const toml::parse_error& e) {
    // toml++ reports syntax errors by exception; this runs once at start-up, so it is caught here and
    // turned into the same one-line shape as every other config error.
    std::string_view description = e.description();
    constexpr std::string_view noise = "Error while parsing ";
    if (description.substr(0, noise.size()) == noise) description.remove_prefix(noise.size());
    Report report;
    report.add(where_of(e.source()), "invalid TOML: " + one_line(description));
    return report.first(source_name);
  }
}

Result<Config> detail::config_from_document(const toml::table& root, const std::string& source_name) {
  Parser parser;
  Config config = parser.parse(root);
  if (!parser.report.empty()) return parser.report.first(source_name);
  config.source_path = source_name;

  Report cross;
  cross_check(config, parser.locations, cross);
  if (!cross.empty()) return cross.first(source_name);
  return config;
}

Result<Config> parse_config(std::string_view toml_text, const std::string& source_name) {
  auto root = detail::parse_document(toml_text, source_name);
  if (!root) return root.error();
  return detail::config_from_document(*root, source_name);
}

Result<void> validate_config(const Config& config) {
  Report report;
  cross_check(config, Locations{}, report);
  if (!report.empty()) return report.first(config.source_path);
  return {};
}

Result<std::string> detail::read_file(const std::string& path, std::size_t max_size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{"", errno};
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return Error{"", error};
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_size) {
      ::close(fd);
      return Error{"", EFBIG};
    }
  }
  ::close(fd);
  return text;
}

Result<std::string> detail::read_config_text(const std::string& path) {
  // A config file is a few kilobytes; the cap keeps a wrong -c (a log, a device) from eating memory.
  auto text = read_file(path, 4u << 20);
  if (text) return text;
  const int error = text.error().sys_errno;
  if (error == EFBIG) {
    return Error{path + ": cannot read config: larger than 4 MiB (expected a mailferry.toml; check -c FILE)"};
  }
  return Error{path + ": cannot read config: " + std::strerror(error) + " (create it or pass -c FILE)", error};
}

Result<Config> load_config(const std::string& path) {
  auto text = detail::read_config_text(path);
  if (!text) return text.error();
  return parse_config(*text, path);
}

}  // namespace mailferry::config
