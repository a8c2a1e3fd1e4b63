// render_config.cpp: Config → TOML text, written by hand rather than through toml++ so keys keep the
// SPEC's order (toml++ sorts them) and unset options can be explained in comments.
#include "mailferry/config/render_config.hpp"

#include <sstream>

#include "mailferry/config/units.hpp"

namespace mailferry::config {
namespace {

// A TOML basic string: quotes, backslashes and control characters escaped; UTF-8 passes through.
std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\t': out += "\\t"; continue;
      case '\r': out += "\\r"; continue;
      default: break;   // a char switch: `default` is fine, the no-default rule is for enums
    }
    if (u < 0x20 || u == 0x7F) {
      constexpr char hex[] = "0123456789ABCDEF";
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 0xF];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

template <class T, class F>
std::string toml_array(const std::vector<T>& items, F&& render) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ", ";
    out += render(items[i]);
  }
  return out + "]";
}

std::string strings(const std::vector<std::string>& items) {
  return toml_array(items, [](const std::string& s) { return toml_string(s); });
}

std::string networks(const std::vector<Network>& items) {
  return toml_array(items, [](const Network& n) { return toml_string(n.text); });
}

std::string port_entry(const UpstreamPort& p) {
  const UpstreamTls implied = p.port == 465 ? UpstreamTls::implicit : UpstreamTls::starttls;
  if (p.tls == implied) return std::to_string(p.port);
  return "{ port = " + std::to_string(p.port) + ", tls = " + toml_string(to_string(p.tls)) + " }";
}

void key(std::ostream& out, std::string_view name, const std::string& value) {
  out << name << " = " << value << '\n';
}

void string_key(std::ostream& out, std::string_view name, std::string_view value) {
  key(out, name, toml_string(value));
}

}  // namespace

std::string render_config(const Config& c) {
  std::ostringstream out;
  out << "# mailferry effective configuration";
  if (!c.source_path.empty()) out << " from " << c.source_path;
  out << "; secrets are masked\n";

  string_key(out, "hostname", c.hostname);
  string_key(out, "spool_dir", c.spool_dir);
  if (c.run_as.empty()) {
    out << "# run_as is not set: serve keeps running as the user who started it\n";
  } else {
    string_key(out, "run_as", c.run_as);
  }
  string_key(out, "max_message_size",
             c.max_message_size_text.empty() ? format_size(c.max_message_size) : c.max_message_size_text);
  key(out, "trusted_networks", networks(c.trusted_networks));
  string_key(out, "log_format", to_string(c.log_format));
  // An empty array has to be a plain key: it must come before the first [table] header.
  if (c.listen.empty()) out << "listen = []   # no SMTP listener\n";

  for (const Listen& l : c.listen) {
    out << "\n[[listen]]\n";
    string_key(out, "address", l.address);
    string_key(out, "tls", to_string(l.tls));
    string_key(out, "auth", to_string(l.auth));
    if (l.proxy_protocol) key(out, "proxy_protocol", "true");
    if (!l.proxy_from.empty()) key(out, "proxy_from", networks(l.proxy_from));
  }

  if (c.tls) {
    out << "\n[tls]\n";
    string_key(out, "cert_file", c.tls->cert_file);
    string_key(out, "key_file", c.tls->key_file);
  }

  for (const User& u : c.users) {
    out << "\n[[user]]\n";
    string_key(out, "name", u.name);
    string_key(out, "password_hash", masked_secret);
    if (!u.allowed_senders.empty()) key(out, "allowed_senders", strings(u.allowed_senders));
  }

  const Upstream& up = c.upstream;
  out << "\n[upstream]\n";
  string_key(out, "host", up.host);
  key(out, "ports", toml_array(up.ports, port_entry));
  if (!up.username.empty()) string_key(out, "username", up.username);
  if (!up.password.empty()) string_key(out, "password", masked_secret);
  if (!up.password_file.empty()) string_key(out, "password_file", up.password_file);
  if (!up.password_command.empty()) key(out, "password_command", strings(up.password_command));
  string_key(out, "auth", to_string(up.auth));
  out << "ca_file = " << toml_string(up.ca_file)
      << (up.ca_file.empty() ? "   # the system trust store\n" : "\n");
  string_key(out, "connect_timeout", format_duration(up.connect_timeout));
  out << "max_rate = " << toml_string(up.max_rate) << (up.max_rate.empty() ? "   # unlimited\n" : "\n");

  if (up.oauth2) {
    const OAuth2& o = *up.oauth2;
    out << "\n[upstream.oauth2]\n";
    string_key(out, "provider", to_string(o.provider));
    if (o.provider == OAuthProvider::microsoft) string_key(out, "tenant", o.tenant);
    string_key(out, "client_id", o.client_id);
    string_key(out, "client_secret_file", o.client_secret_file);
    string_key(out, "refresh_token_file", o.refresh_token_file);
    if (!o.token_url.empty()) string_key(out, "token_url", o.token_url);
    if (!o.device_url.empty()) string_key(out, "device_url", o.device_url);
  }

  if (c.rewrite) {
    out << "\n[rewrite]\n";
    string_key(out, "envelope_from", c.rewrite->envelope_from);
    string_key(out, "header_from", c.rewrite->header_from);
  }

  out << "\n[queue]\n";
  key(out, "retry_schedule",
      toml_array(c.queue.retry_schedule, [](Millis d) { return toml_string(format_duration(d)); }));
  string_key(out, "max_age", format_duration(c.queue.max_age));

  out << "\n[metrics]\n";
  out << "address = " << toml_string(c.metrics.address) << (c.metrics.address.empty() ? "   # off\n" : "\n");
  return out.str();
}

}  // namespace mailferry::config
