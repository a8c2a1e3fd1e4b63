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

// Writes keys with a "# from MAILFERRY_…" comment on each value the environment set, so an operator
// sees which setting the file does not show; otherwise `note` explains the value, if given.
class Writer {
 public:
  explicit Writer(const Config& c) : config_(c) {}

  void key(std::string_view path, const std::string& value, std::string_view note = {}) {
    const auto dot = path.rfind('.');
    out_ << (dot == std::string_view::npos ? path : path.substr(dot + 1)) << " = " << value;
    end_line(path, note);
  }
  void string_key(std::string_view path, std::string_view value, std::string_view note = {}) {
    key(path, toml_string(value), note);
  }
  // "[[listen]]", or any line about the key at `path` as a whole.
  void line(std::string_view text, std::string_view path = {}, std::string_view note = {}) {
    out_ << text;
    end_line(path, note);
  }
  std::string str() const { return out_.str(); }

 private:
  void end_line(std::string_view path, std::string_view note) {
    auto it = path.empty() ? config_.env_sources.end() : config_.env_sources.find(path);
    if (it != config_.env_sources.end()) {
      out_ << "   # from " << it->second;
    } else if (!note.empty()) {
      out_ << "   # " << note;
    }
    out_ << '\n';
  }

  const Config& config_;
  std::ostringstream out_;
};

}  // namespace

std::string render_config(const Config& c) {
  Writer w(c);
  std::string title = "# mailferry effective configuration";
  if (!c.source_path.empty()) title += " from " + c.source_path;
  if (!c.env_sources.empty()) title += c.source_path.empty() ? " from the environment" : " and the environment";
  w.line(title + "; secrets are masked");

  w.string_key("hostname", c.hostname);
  w.string_key("spool_dir", c.spool_dir);
  if (c.run_as.empty()) {
    w.line("# run_as is not set: serve keeps running as the user who started it");
  } else {
    w.string_key("run_as", c.run_as);
  }
  w.string_key("max_message_size",
               c.max_message_size_text.empty() ? format_size(c.max_message_size) : c.max_message_size_text);
  w.key("trusted_networks", networks(c.trusted_networks));
  w.string_key("log_format", to_string(c.log_format));
  // An empty array has to be a plain key: it must come before the first [table] header.
  if (c.listen.empty()) w.key("listen", "[]", "no SMTP listener");

  for (const Listen& l : c.listen) {
    w.line("");
    w.line("[[listen]]", "listen");
    w.string_key("address", l.address);
    w.string_key("tls", to_string(l.tls));
    w.string_key("auth", to_string(l.auth));
    if (l.proxy_protocol) w.key("proxy_protocol", "true");
    if (!l.proxy_from.empty()) w.key("proxy_from", networks(l.proxy_from));
  }

  if (c.tls) {
    w.line("");
    w.line("[tls]");
    w.string_key("tls.cert_file", c.tls->cert_file);
    w.string_key("tls.key_file", c.tls->key_file);
  }

  for (const User& u : c.users) {
    w.line("");
    w.line("[[user]]", "user");
    w.string_key("name", u.name);
    w.string_key("password_hash", masked_secret);
    if (!u.allowed_senders.empty()) w.key("allowed_senders", strings(u.allowed_senders));
  }

  const Upstream& up = c.upstream;
  w.line("");
  w.line("[upstream]");
  w.string_key("upstream.host", up.host);
  w.key("upstream.ports", toml_array(up.ports, port_entry));
  if (!up.username.empty()) w.string_key("upstream.username", up.username);
  if (!up.password.empty()) w.string_key("upstream.password", masked_secret);
  if (!up.password_file.empty()) w.string_key("upstream.password_file", up.password_file);
  if (!up.password_command.empty()) w.key("upstream.password_command", strings(up.password_command));
  w.string_key("upstream.auth", to_string(up.auth));
  w.string_key("upstream.ca_file", up.ca_file, up.ca_file.empty() ? "the system trust store" : "");
  w.string_key("upstream.connect_timeout", format_duration(up.connect_timeout));
  w.string_key("upstream.max_rate", up.max_rate, up.max_rate.empty() ? "unlimited" : "");

  if (up.oauth2) {
    const OAuth2& o = *up.oauth2;
    w.line("");
    w.line("[upstream.oauth2]");
    w.string_key("upstream.oauth2.provider", to_string(o.provider));
    if (o.provider == OAuthProvider::microsoft) w.string_key("upstream.oauth2.tenant", o.tenant);
    w.string_key("upstream.oauth2.client_id", o.client_id);
    w.string_key("upstream.oauth2.client_secret_file", o.client_secret_file);
    w.string_key("upstream.oauth2.refresh_token_file", o.refresh_token_file);
    if (!o.token_url.empty()) w.string_key("upstream.oauth2.token_url", o.token_url);
    if (!o.device_url.empty()) w.string_key("upstream.oauth2.device_url", o.device_url);
  }

  if (c.rewrite) {
    w.line("");
    w.line("[rewrite]");
    w.string_key("rewrite.envelope_from", c.rewrite->envelope_from);
    w.string_key("rewrite.header_from", c.rewrite->header_from);
  }

  w.line("");
  w.line("[queue]");
  w.key("queue.retry_schedule",
        toml_array(c.queue.retry_schedule, [](Millis d) { return toml_string(format_duration(d)); }));
  w.string_key("queue.max_age", format_duration(c.queue.max_age));

  w.line("");
  w.line("[metrics]");
  w.string_key("metrics.address", c.metrics.address, c.metrics.address.empty() ? "off" : "");
  return w.str();
}

}  // namespace mailferry::config
