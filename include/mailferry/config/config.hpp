// config.hpp: plain structs mirroring the SPEC's TOML schema, after validation, plus the parsers for
// the two structured strings they hold (networks, listen addresses) and the enums' TOML spellings.
// Never reads a file or the environment (load_config and env_overlay do); every value here is already checked.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailferry/base/result.hpp"
#include "mailferry/base/secret.hpp"

namespace mailferry::config {

// What check-config prints instead of a secret. load_config refuses it as a password or hash, so a
// printed config fed back by mistake fails at start-up, not at the first AUTH.
inline constexpr std::string_view masked_secret = "********";

using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;

// An IPv4 or IPv6 network in CIDR form ("127.0.0.0/8", "::1/128").
struct Network {
  std::string text;                 // as written, for printing
  bool v6 = false;
  std::array<unsigned char, 16> addr{};   // v4 in the first 4 bytes
  int prefix = 0;
  // address: 4 bytes (v4) or 16 bytes (v6); a v4-mapped v6 address matches v4 networks.
  bool contains(const unsigned char* address, bool address_v6) const;
  friend bool operator==(const Network&, const Network&) = default;
};

// "10.0.0.0/8", "fd00::/8"; a bare address ("192.0.2.7", "::1") is a /32 or /128.
// Host bits set under the prefix ("10.0.0.1/8") are an error naming the intended network: in
// trusted_networks a typo must not silently widen or narrow who may relay.
Result<Network> parse_network(std::string_view text);

enum class ListenTls { starttls, implicit, none };
enum class ListenAuth { required, none };
enum class UpstreamTls { starttls, implicit, none };
enum class UpstreamAuth { auto_, plain, login, xoauth2 };
enum class LogFormat { text, json };
enum class OAuthProvider { microsoft, google, custom };

struct Listen {
  std::string address;     // as written: "0.0.0.0:587", "[::1]:587"
  std::string host;        // "0.0.0.0", "::1"
  std::uint16_t port = 0;
  ListenTls tls = ListenTls::starttls;
  ListenAuth auth = ListenAuth::required;
  bool proxy_protocol = false;
  std::vector<Network> proxy_from;
  friend bool operator==(const Listen&, const Listen&) = default;
};

// "host:port" with an IPv4 literal, or "[v6]:port"; port 1..65535. Host names are refused: a listener
// binds an address, and resolving a name at start-up would make what is bound depend on DNS.
// Fills address, host and port; the other fields keep their defaults. Also used for [metrics] address.
Result<Listen> parse_listen_address(std::string_view text);

struct Tls {
  std::string cert_file;
  std::string key_file;
  friend bool operator==(const Tls&, const Tls&) = default;
};

struct User {
  std::string name;
  std::string password_hash;             // crypt(3); never printed unmasked
  std::vector<std::string> allowed_senders;   // empty = any
  friend bool operator==(const User&, const User&) = default;
};

struct UpstreamPort {
  std::uint16_t port = 0;
  UpstreamTls tls = UpstreamTls::starttls;   // default: 465 → implicit, others starttls
  friend bool operator==(const UpstreamPort&, const UpstreamPort&) = default;
};

struct OAuth2 {
  OAuthProvider provider = OAuthProvider::microsoft;
  std::string tenant = "common";
  std::string client_id;
  std::string client_secret_file;
  std::string refresh_token_file;
  std::string token_url;     // custom only
  std::string device_url;    // custom only
  friend bool operator==(const OAuth2&, const OAuth2&) = default;
};

struct Upstream {
  std::string host;
  std::vector<UpstreamPort> ports{{587, UpstreamTls::starttls}, {2525, UpstreamTls::starttls},
                                  {465, UpstreamTls::implicit}};
  std::string username;
  Secret password;
  std::string password_file;
  std::vector<std::string> password_command;
  UpstreamAuth auth = UpstreamAuth::auto_;
  std::string ca_file;
  Millis connect_timeout{10'000};
  std::string max_rate;                     // as written, e.g. "100/h"; empty = unlimited
  std::uint32_t max_rate_count = 0;         // parsed form of max_rate
  Seconds max_rate_period{0};
  std::optional<OAuth2> oauth2;
  friend bool operator==(const Upstream&, const Upstream&) = default;
};

struct Rewrite {
  std::string envelope_from;
  std::string header_from;
  friend bool operator==(const Rewrite&, const Rewrite&) = default;
};

struct Queue {
  std::vector<Millis> retry_schedule{Seconds{30}, Seconds{120}, Seconds{600}, Seconds{1800},
                                     Seconds{3600}};
  Seconds max_age{5 * 24 * 3600};
  friend bool operator==(const Queue&, const Queue&) = default;
};

struct Metrics {
  std::string address;   // empty = off
  friend bool operator==(const Metrics&, const Metrics&) = default;
};

struct Config {
  std::string source_path;        // the file it came from, for messages ("" = environment only)
  std::string hostname;           // default: the system's host name (filled by load_config)
  std::string spool_dir = "/var/spool/mailferry";
  std::string run_as;
  std::uint64_t max_message_size = 25ull * 1024 * 1024;
  std::string max_message_size_text = "25MiB";
  std::vector<Network> trusted_networks;     // default 127.0.0.0/8, ::1/128
  LogFormat log_format = LogFormat::text;
  std::vector<Listen> listen;                // default: one 127.0.0.1:2525 listener, see load_config.hpp
  std::optional<Tls> tls;
  std::vector<User> users;
  Upstream upstream;
  std::optional<Rewrite> rewrite;
  Queue queue;
  Metrics metrics;
  // Keys set from the environment: key path ("upstream.host", "listen", "user") → the variable that
  // set it ("MAILFERRY_UPSTREAM_HOST", or "…_FILE" when read from a file), for check-config.
  std::map<std::string, std::string, std::less<>> env_sources;
  friend bool operator==(const Config&, const Config&) = default;
};

// The TOML spelling of each enum value ("starttls", "auto", "json"), for check-config and logs.
std::string_view to_string(ListenTls v);
std::string_view to_string(ListenAuth v);
std::string_view to_string(UpstreamTls v);
std::string_view to_string(UpstreamAuth v);
std::string_view to_string(LogFormat v);
std::string_view to_string(OAuthProvider v);

}  // namespace mailferry::config
