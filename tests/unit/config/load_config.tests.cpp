// load_config.tests.cpp: mailferry.toml → Config, the SPEC's example, defaults, and every mistake as
// one exact line with file:line:column.
#include "mailferry/config/load_config.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

using namespace mailferry::config;
using namespace std::chrono_literals;

namespace {

// The SPEC's "Configuration (TOML)" block, verbatim.
constexpr std::string_view spec_example = R"toml(hostname   = "relay.example.lan"        # greeting/EHLO name; default: the system's host name
spool_dir  = "/var/spool/mailferry"      # the default
run_as     = "mailferry"                # `serve` started as root binds its ports, then runs as this user;
                                        # omitted: keeps running as whoever started it (a warning if root)
max_message_size = "25MiB"
trusted_networks = ["127.0.0.0/8", "::1/128"]   # may submit without AUTH on auth = "none" listeners
log_format = "text"                     # "text" | "json" (one JSON object per line, same fields)

[[listen]]
address = "0.0.0.0:587"                 # host:port, or [v6]:port
tls     = "starttls"                    # "starttls" | "implicit" | "none"
auth    = "required"                    # "required" | "none"

[[listen]]
address = "0.0.0.0:465"
tls     = "implicit"

[[listen]]
address = "127.0.0.1:25"
tls     = "none"
auth    = "none"                        # only clients in trusted_networks may send

[[listen]]                              # behind a load balancer (haproxy, nginx, a cloud LB)
address = "0.0.0.0:2525"
tls     = "starttls"
proxy_protocol = true                   # PROXY v1 or v2 header required first; the client's real address
proxy_from = ["10.0.0.0/8"]             # counts for trusted_networks, limits and logs; a header from any
                                        # other source, or none, closes the connection

[tls]                                   # the listeners' certificate
cert_file = "/etc/mailferry/cert.pem"
key_file  = "/etc/mailferry/key.pem"

[[user]]
name            = "wordpress"
password_hash   = "$y$j9T$..."          # crypt(3) hash, as printed by `mailferry passwd`
allowed_senders = ["wordpress@example.com", "@example.org"]   # optional; omitted = any

[upstream]
host     = "smtp.example.com"
ports    = [587, 2525, 465]             # tried in order; 465 = implicit TLS, others STARTTLS;
                                        # an entry may be a table: { port = 2525, tls = "implicit" }
username = "apikey"
password_file = "/etc/mailferry/upstream.secret"   # or password = "...", or password_command = ["cmd", "arg"]
auth     = "auto"                       # "auto" | "plain" | "login" | "xoauth2"
ca_file  = ""                           # default: the system trust store
connect_timeout = "10s"
max_rate = ""                           # e.g. "100/h", "20/min": stay under the provider's quota; excess waits in the queue

[upstream.oauth2]                       # only with auth = "xoauth2" and no password_command
provider      = "microsoft"             # "microsoft" | "google" | "custom" (then token_url, device_url)
tenant        = "contoso.onmicrosoft.com"   # microsoft only; default "common"
client_id     = "..."
client_secret_file = ""                 # optional: public clients need none
refresh_token_file = "/var/lib/mailferry/oauth.refresh"   # written by `mailferry oauth login`, refreshed in place

[rewrite]                               # optional: providers that reject unverified senders
envelope_from = "relay@example.com"     # every message's envelope sender
header_from   = "relay@example.com"     # replaces From:; the original goes to Reply-To when there is none

[queue]
retry_schedule = ["30s", "2m", "10m", "30m", "1h"]   # the last interval repeats
max_age        = "5d"                                 # then the message bounces

[metrics]                               # off unless an address is given
address = "127.0.0.1:9325"              # HTTP: /metrics (Prometheus text format), /healthz, /readyz
)toml";

// Replaces one occurrence of `from`, which must be there (so a SPEC edit breaks the test loudly).
std::string replaced(std::string text, std::string_view from, std::string_view to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// The SPEC's example with a password: [upstream.oauth2] removed (it needs auth = "xoauth2").
std::string spec_with_password() {
  const std::string text(spec_example);
  const auto begin = text.find("[upstream.oauth2]");
  const auto end = text.find("[rewrite]");
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  return text.substr(0, begin) + text.substr(end);
}

// The SPEC's example with OAuth2: auth = "xoauth2" and no password_file.
std::string spec_with_oauth2() {
  std::string text = replaced(std::string(spec_example), R"(auth     = "auto")", R"(auth     = "xoauth2")");
  return replaced(text, R"(password_file = "/etc/mailferry/upstream.secret")", "");
}

std::string error_of(std::string_view toml) {
  auto result = parse_config(toml, "mailferry.toml");
  return result ? std::string("(no error)") : result.error().message;
}

std::string host_name() {
  char buffer[HOST_NAME_MAX + 1] = {};
  REQUIRE(gethostname(buffer, sizeof buffer - 1) == 0);
  return buffer;
}

}  // namespace

TEST_CASE("the SPEC's example loads, with a password", "[config][load_config]") {
  auto result = parse_config(spec_with_password(), "mailferry.toml");
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.ok());
  const Config& c = *result;
  CHECK(c.source_path == "mailferry.toml");
  CHECK(c.hostname == "relay.example.lan");
  CHECK(c.spool_dir == "/var/spool/mailferry");
  CHECK(c.run_as == "mailferry");
  CHECK(c.max_message_size == 25u * 1024 * 1024);
  CHECK(c.max_message_size_text == "25MiB");
  REQUIRE(c.trusted_networks.size() == 2);
  CHECK(c.trusted_networks[0].text == "127.0.0.0/8");
  CHECK(c.trusted_networks[1].text == "::1/128");
  CHECK(c.log_format == LogFormat::text);

  REQUIRE(c.listen.size() == 4);
  CHECK(c.listen[0].address == "0.0.0.0:587");
  CHECK(c.listen[0].host == "0.0.0.0");
  CHECK(c.listen[0].port == 587);
  CHECK(c.listen[0].tls == ListenTls::starttls);
  CHECK(c.listen[0].auth == ListenAuth::required);
  CHECK(c.listen[1].port == 465);
  CHECK(c.listen[1].tls == ListenTls::implicit);
  CHECK(c.listen[1].auth == ListenAuth::required);   // the default
  CHECK(c.listen[2].address == "127.0.0.1:25");
  CHECK(c.listen[2].tls == ListenTls::none);
  CHECK(c.listen[2].auth == ListenAuth::none);
  CHECK(c.listen[3].proxy_protocol);
  REQUIRE(c.listen[3].proxy_from.size() == 1);
  CHECK(c.listen[3].proxy_from[0].text == "10.0.0.0/8");
  CHECK_FALSE(c.listen[0].proxy_protocol);

  REQUIRE(c.tls.has_value());
  CHECK(c.tls->cert_file == "/etc/mailferry/cert.pem");
  CHECK(c.tls->key_file == "/etc/mailferry/key.pem");

  REQUIRE(c.users.size() == 1);
  CHECK(c.users[0].name == "wordpress");
  CHECK(c.users[0].password_hash == "$y$j9T$...");
  CHECK(c.users[0].allowed_senders == std::vector<std::string>{"wordpress@example.com", "@example.org"});

  const Upstream& u = c.upstream;
  CHECK(u.host == "smtp.example.com");
  CHECK(u.ports == std::vector<UpstreamPort>{{587, UpstreamTls::starttls},
                                             {2525, UpstreamTls::starttls},
                                             {465, UpstreamTls::implicit}});
  CHECK(u.username == "apikey");
  CHECK(u.password.empty());
  CHECK(u.password_file == "/etc/mailferry/upstream.secret");
  CHECK(u.password_command.empty());
  CHECK(u.auth == UpstreamAuth::auto_);
  CHECK(u.ca_file.empty());
  CHECK(u.connect_timeout == 10s);
  CHECK(u.max_rate.empty());
  CHECK(u.max_rate_count == 0);
  CHECK_FALSE(u.oauth2.has_value());

  REQUIRE(c.rewrite.has_value());
  CHECK(c.rewrite->envelope_from == "relay@example.com");
  CHECK(c.rewrite->header_from == "relay@example.com");
  CHECK(c.queue.retry_schedule == std::vector<Millis>{30s, 2min, 10min, 30min, 1h});
  CHECK(c.queue.max_age == std::chrono::hours{24 * 5});
  CHECK(c.metrics.address == "127.0.0.1:9325");
}

TEST_CASE("the SPEC's example loads, with OAuth2", "[config][load_config]") {
  auto result = parse_config(spec_with_oauth2(), "mailferry.toml");
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.ok());
  const Upstream& u = result->upstream;
  CHECK(u.auth == UpstreamAuth::xoauth2);
  CHECK(u.password_file.empty());
  REQUIRE(u.oauth2.has_value());
  CHECK(u.oauth2->provider == OAuthProvider::microsoft);
  CHECK(u.oauth2->tenant == "contoso.onmicrosoft.com");
  CHECK(u.oauth2->client_id == "...");
  CHECK(u.oauth2->client_secret_file.empty());
  CHECK(u.oauth2->refresh_token_file == "/var/lib/mailferry/oauth.refresh");
}

// The SPEC's block shows every key at once, including [upstream.oauth2] next to auth = "auto" and a
// password_file; taken literally that is two token sources, so it is refused with a precise line.
TEST_CASE("the SPEC's example verbatim mixes a password with [upstream.oauth2]", "[config][load_config]") {
  CHECK(error_of(spec_example) ==
        R"(mailferry.toml:44:17: upstream.password_file is set, but [upstream.oauth2] provides the token (expected one of them))");
}

TEST_CASE("absent keys get the documented defaults", "[config][load_config]") {
  auto result = parse_config("[upstream]\nhost = \"smtp.example.com\"\n", "mailferry.toml");
  REQUIRE(result.ok());
  const Config& c = *result;
  CHECK(c.hostname == host_name());
  CHECK(c.spool_dir == "/var/spool/mailferry");
  CHECK(c.run_as.empty());
  CHECK(c.max_message_size == 25u * 1024 * 1024);
  REQUIRE(c.trusted_networks.size() == 2);
  CHECK(c.trusted_networks[0] == parse_network("127.0.0.0/8").value());
  CHECK(c.trusted_networks[1] == parse_network("::1/128").value());
  REQUIRE(c.listen.size() == 1);   // the default listener: loopback, plain, trusted clients only
  CHECK(c.listen[0].address == "127.0.0.1:2525");
  CHECK(c.listen[0].host == "127.0.0.1");
  CHECK(c.listen[0].port == 2525);
  CHECK(c.listen[0].tls == ListenTls::none);
  CHECK(c.listen[0].auth == ListenAuth::none);
  CHECK_FALSE(c.tls.has_value());
  CHECK(c.users.empty());
  CHECK(c.upstream.ports == std::vector<UpstreamPort>{{587, UpstreamTls::starttls},
                                                      {2525, UpstreamTls::starttls},
                                                      {465, UpstreamTls::implicit}});
  CHECK(c.upstream.auth == UpstreamAuth::auto_);
  CHECK(c.upstream.connect_timeout == 10s);
  CHECK_FALSE(c.rewrite.has_value());
  CHECK(c.queue.retry_schedule == std::vector<Millis>{30s, 2min, 10min, 30min, 1h});
  CHECK(c.queue.max_age == std::chrono::hours{24 * 5});
  CHECK(c.metrics.address.empty());
}

TEST_CASE("explicit empty lists are kept, not replaced by defaults", "[config][load_config]") {
  auto result = parse_config("listen = []\ntrusted_networks = []\n[upstream]\nhost = \"h.example\"\n", "f");
  REQUIRE(result.ok());
  CHECK(result->listen.empty());
  CHECK(result->trusted_networks.empty());
}

TEST_CASE("upstream.ports entries: numbers and { port, tls } tables", "[config][load_config]") {
  auto [ports, expected] = GENERATE(table<std::string, std::vector<UpstreamPort>>({
      {"[587, 2525, 465]",
       {{587, UpstreamTls::starttls}, {2525, UpstreamTls::starttls}, {465, UpstreamTls::implicit}}},
      {R"([{ port = 2525, tls = "implicit" }])", {{2525, UpstreamTls::implicit}}},
      {R"([{ port = 25, tls = "none" }, 587])", {{25, UpstreamTls::none}, {587, UpstreamTls::starttls}}},
      {R"([{ port = 465 }])", {{465, UpstreamTls::implicit}}},
      {R"([{ port = 465, tls = "starttls" }, 465])", {{465, UpstreamTls::starttls}, {465, UpstreamTls::implicit}}},
      {"[1, 65535]", {{1, UpstreamTls::starttls}, {65535, UpstreamTls::starttls}}},
  }));
  CAPTURE(ports);
  auto result = parse_config("[upstream]\nhost = \"smtp.example.com\"\nports = " + ports + "\n", "f");
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.ok());
  CHECK(result->upstream.ports == expected);
}

TEST_CASE("sizes, durations and rates in the file", "[config][load_config]") {
  auto result = parse_config(R"toml(
max_message_size = 1048576
[upstream]
host = "smtp.example.com"
connect_timeout = "500ms"
max_rate = "20/min"
[queue]
retry_schedule = ["1s", "90s", "1d"]
max_age = "2d"
)toml", "f");
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.ok());
  CHECK(result->max_message_size == 1048576);
  CHECK(result->max_message_size_text == "1MiB");
  CHECK(result->upstream.connect_timeout == 500ms);
  CHECK(result->upstream.max_rate == "20/min");
  CHECK(result->upstream.max_rate_count == 20);
  CHECK(result->upstream.max_rate_period == 60s);
  CHECK(result->queue.retry_schedule == std::vector<Millis>{1s, 90s, 24h});
  CHECK(result->queue.max_age == 48h);
}

TEST_CASE("every config mistake is one line: file:line:column, what, and what was expected",
          "[config][load_config]") {
  auto [name, toml, expected] = GENERATE(table<std::string_view, std::string_view, std::string_view>({
      {"unknown top-level key, did you mean",
       R"toml(hostname = "relay.example.lan"
listne = 1
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:1: unknown key "listne"; did you mean "listen"? (expected one of: hostname, spool_dir, run_as, max_message_size, trusted_networks, log_format, listen, tls, user, upstream, rewrite, queue, metrics))msg"},
      {"unknown [[table]] header, did you mean",
       R"toml([upstream]
host = "smtp.example.com"

[[listne]]
address = "127.0.0.1:25"
)toml",
       R"msg(mailferry.toml:4:3: unknown key "listne"; did you mean "listen"? (expected one of: hostname, spool_dir, run_as, max_message_size, trusted_networks, log_format, listen, tls, user, upstream, rewrite, queue, metrics))msg"},
      {"unknown key in [[listen]]",
       R"toml([[listen]]
address = "127.0.0.1:25"
  tls = "none"
  auht = "none"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:4:3: unknown key "auht" in [[listen]]; did you mean "auth"? (expected one of: address, tls, auth, proxy_protocol, proxy_from))msg"},
      {"unknown key in [tls]",
       R"toml([tls]
cert_file = "/c"
key = "/k"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:1: unknown key "key" in [tls] (expected one of: cert_file, key_file))msg"},
      {"unknown key in [[user]]",
       R"toml([[user]]
name = "wp"
password_hash = "$y$abc"
allowed_sender = ["a@b"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:4:1: unknown key "allowed_sender" in [[user]]; did you mean "allowed_senders"? (expected one of: name, password_hash, allowed_senders))msg"},
      {"unknown key in [upstream]",
       R"toml([upstream]
host = "smtp.example.com"
prots = [587]
)toml",
       R"msg(mailferry.toml:3:1: unknown key "prots" in [upstream]; did you mean "ports"? (expected one of: host, ports, username, password, password_file, password_command, auth, ca_file, connect_timeout, max_rate, oauth2))msg"},
      {"unknown key in [upstream.oauth2]",
       R"toml([upstream]
host = "smtp.example.com"
auth = "xoauth2"
username = "u@example.com"
[upstream.oauth2]
provider = "google"
client_id = "x"
refresh_token_file = "/r"
client_secret = "s"
)toml",
       R"msg(mailferry.toml:9:1: unknown key "client_secret" in [upstream.oauth2] (expected one of: provider, tenant, client_id, client_secret_file, refresh_token_file, token_url, device_url))msg"},
      {"unknown key in [rewrite]",
       R"toml([rewrite]
envelope_sender = "a@example.com"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:1: unknown key "envelope_sender" in [rewrite] (expected one of: envelope_from, header_from))msg"},
      {"unknown key in [queue]",
       R"toml([queue]
max_age = "5d"
retry = ["1m"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:1: unknown key "retry" in [queue] (expected one of: retry_schedule, max_age))msg"},
      {"unknown key in [metrics]",
       R"toml([metrics]
adress = "127.0.0.1:9325"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:1: unknown key "adress" in [metrics]; did you mean "address"? (expected one of: address))msg"},
      {"unknown key in a ports entry",
       R"toml([upstream]
host = "smtp.example.com"
ports = [587, { port = 2525, tsl = "none" }]
)toml",
       R"msg(mailferry.toml:3:30: unknown key "tsl" in an upstream.ports entry; did you mean "tls"? (expected one of: port, tls))msg"},
      {"key in the wrong table",
       R"toml(connect_timeout = "10s"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:1: unknown key "connect_timeout"; it belongs in [upstream] (expected one of: hostname, spool_dir, run_as, max_message_size, trusted_networks, log_format, listen, tls, user, upstream, rewrite, queue, metrics))msg"},
      {"unknown key, nothing close",
       R"toml(colour = "blue"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:1: unknown key "colour" (expected one of: hostname, spool_dir, run_as, max_message_size, trusted_networks, log_format, listen, tls, user, upstream, rewrite, queue, metrics))msg"},
      {"hostname integer",
       R"toml(hostname = 42
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:12: wrong type for hostname: an integer (expected a string))msg"},
      {"proxy_protocol string",
       R"toml([[listen]]
address = "0.0.0.0:2525"
proxy_protocol = "yes"
proxy_from = ["10.0.0.0/8"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:18: wrong type for listen.proxy_protocol: a string (expected true or false))msg"},
      {"ports not an array",
       R"toml([upstream]
host = "smtp.example.com"
ports = 587
)toml",
       R"msg(mailferry.toml:3:9: wrong type for upstream.ports: an integer (expected an array of ports, like [587, 2525, 465]))msg"},
      {"port as string",
       R"toml([upstream]
host = "smtp.example.com"
ports = ["587"]
)toml",
       R"msg(mailferry.toml:3:10: wrong type for an entry of upstream.ports: a string (expected a port number, or a table like { port = 2525, tls = "implicit" }))msg"},
      {"trusted_networks string",
       R"toml(trusted_networks = "10.0.0.0/8"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:20: wrong type for trusted_networks: a string (expected an array of networks, like ["10.0.0.0/8"]))msg"},
      {"connect_timeout integer",
       R"toml([upstream]
host = "smtp.example.com"
connect_timeout = 10
)toml",
       R"msg(mailferry.toml:3:19: wrong type for upstream.connect_timeout: an integer (expected a duration string like "30s"))msg"},
      {"[listen] single table",
       R"toml([listen]
address = "127.0.0.1:25"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:1: [listen] is a single table (expected [[listen]], with double brackets))msg"},
      {"tls as string",
       R"toml(tls = "starttls"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:7: wrong type for tls: a string (expected a table [tls]))msg"},
      {"upstream as string",
       R"toml(upstream = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:12: wrong type for upstream: a string (expected a table [upstream]))msg"},
      {"max_message_size float",
       R"toml(max_message_size = 2.5
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:20: wrong type for max_message_size: a float (expected a size string like "25MiB", or a number of bytes))msg"},
      {"listen tls typo",
       R"toml([[listen]]
address = "0.0.0.0:587"
tls = "startls"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:7: listen.tls: unknown value "startls"; did you mean "starttls"? (expected one of: "starttls", "implicit", "none"))msg"},
      {"listen auth bad",
       R"toml([[listen]]
address = "127.0.0.1:25"
tls = "none"
auth = "optional"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:4:8: listen.auth: unknown value "optional" (expected one of: "required", "none"))msg"},
      {"upstream auth bad",
       R"toml([upstream]
host = "smtp.example.com"
auth = "cram-md5"
)toml",
       R"msg(mailferry.toml:3:8: upstream.auth: unknown value "cram-md5" (expected one of: "auto", "plain", "login", "xoauth2"))msg"},
      {"log_format bad",
       R"toml(log_format = "jsno"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:14: log_format: unknown value "jsno"; did you mean "json"? (expected one of: "text", "json"))msg"},
      {"provider bad",
       R"toml([upstream]
host = "smtp.example.com"
auth = "xoauth2"
username = "u@example.com"
[upstream.oauth2]
provider = "yahoo"
client_id = "x"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:6:12: upstream.oauth2.provider: unknown value "yahoo" (expected one of: "microsoft", "google", "custom"))msg"},
      {"ports entry tls bad",
       R"toml([upstream]
host = "smtp.example.com"
ports = [{ port = 2525, tls = "ssl" }]
)toml",
       R"msg(mailferry.toml:3:31: upstream.ports.tls: unknown value "ssl" (expected one of: "starttls", "implicit", "none"))msg"},
      {"listen tls boolean",
       R"toml([[listen]]
address = "0.0.0.0:587"
tls = true
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:7: wrong type for listen.tls: a boolean (expected one of: "starttls", "implicit", "none"))msg"},
      {"duration no unit",
       R"toml([upstream]
host = "smtp.example.com"
connect_timeout = "10"
)toml",
       R"msg(mailferry.toml:3:19: upstream.connect_timeout: "10" has no unit (expected digits then ms, s, m, h or d, like "500ms", "30s", "10m", "1h", "5d"))msg"},
      {"duration negative",
       R"toml([upstream]
host = "smtp.example.com"
connect_timeout = "-5s"
)toml",
       R"msg(mailferry.toml:3:19: upstream.connect_timeout: "-5s" is negative (expected digits then ms, s, m, h or d, like "500ms", "30s", "10m", "1h", "5d"))msg"},
      {"duration space",
       R"toml([upstream]
host = "smtp.example.com"
connect_timeout = "10 s"
)toml",
       R"msg(mailferry.toml:3:19: upstream.connect_timeout: "10 s" has an unknown unit " s" (expected digits then ms, s, m, h or d, like "500ms", "30s", "10m", "1h", "5d"))msg"},
      {"duration zero",
       R"toml([upstream]
host = "smtp.example.com"
connect_timeout = "0s"
)toml",
       R"msg(mailferry.toml:3:19: upstream.connect_timeout: "0s" is zero (expected more than 0s))msg"},
      {"duration unknown unit",
       R"toml([upstream]
host = "smtp.example.com"
connect_timeout = "10sec"
)toml",
       R"msg(mailferry.toml:3:19: upstream.connect_timeout: "10sec" has an unknown unit "sec" (expected digits then ms, s, m, h or d, like "500ms", "30s", "10m", "1h", "5d"))msg"},
      {"retry entry bad",
       R"toml([queue]
retry_schedule = ["30s", "2x", "10m"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:26: queue.retry_schedule: "2x" has an unknown unit "x" (expected digits then ms, s, m, h or d, like "500ms", "30s", "10m", "1h", "5d"))msg"},
      {"retry empty",
       R"toml([queue]
retry_schedule = []
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:18: queue.retry_schedule is empty (expected at least one interval, like ["30s", "2m", "10m"]))msg"},
      {"max_age fraction",
       R"toml([queue]
max_age = "1500ms"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:11: queue.max_age: "1500ms" is not a whole number of seconds (expected a duration like "5d"))msg"},
      {"size junk",
       R"toml(max_message_size = "25 MiB"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:20: max_message_size: "25 MiB" has an unknown unit " MiB" (expected digits then an optional unit B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, like "25MiB"))msg"},
      {"size zero",
       R"toml(max_message_size = "0KiB"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:20: max_message_size is zero (expected a size like "25MiB"))msg"},
      {"size negative int",
       R"toml(max_message_size = -1
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:20: max_message_size is negative (expected a size like "25MiB"))msg"},
      {"rate bad",
       R"toml([upstream]
host = "smtp.example.com"
max_rate = "100/week"
)toml",
       R"msg(mailferry.toml:3:12: upstream.max_rate: "100/week" has an unknown period "week" (expected COUNT/PERIOD with a period of s, min, h or d, like "100/h" or "20/min"))msg"},
      {"rate zero",
       R"toml([upstream]
host = "smtp.example.com"
max_rate = "0/h"
)toml",
       R"msg(mailferry.toml:3:12: upstream.max_rate: "0/h" allows nothing at all (expected COUNT/PERIOD with a period of s, min, h or d, like "100/h" or "20/min"))msg"},
      {"network host bits",
       R"toml(trusted_networks = ["127.0.0.0/8", "10.0.0.1/8"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:36: trusted_networks: "10.0.0.1/8" has host bits set after /8 (expected the network "10.0.0.0/8", or a /32 for one host))msg"},
      {"network prefix too long",
       R"toml(trusted_networks = ["10.0.0.0/33"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:21: trusted_networks: "10.0.0.0/33" has a prefix length over 32 (expected a network like "10.0.0.0/8" or "fd00::/8"))msg"},
      {"network v6 host bits",
       R"toml(trusted_networks = ["fd00::1/8"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:21: trusted_networks: "fd00::1/8" has host bits set after /8 (expected the network "fd00::/8", or a /128 for one host))msg"},
      {"network junk",
       R"toml(trusted_networks = ["localhost"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:21: trusted_networks: "localhost" is not an IP address or network (expected a network like "10.0.0.0/8" or "fd00::/8"))msg"},
      {"network empty prefix",
       R"toml(trusted_networks = ["10.0.0.0/"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:21: trusted_networks: "10.0.0.0/" has no valid prefix length after "/" (expected a network like "10.0.0.0/8" or "fd00::/8"))msg"},
      {"proxy_from bad",
       R"toml([[listen]]
address = "0.0.0.0:2525"
proxy_protocol = true
proxy_from = ["10.0.0.0/40"]
[tls]
cert_file="/c"
key_file="/k"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:4:15: listen.proxy_from: "10.0.0.0/40" has a prefix length over 32 (expected a network like "10.0.0.0/8" or "fd00::/8"))msg"},
      {"listen no port",
       R"toml([[listen]]
address = "0.0.0.0"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:11: listen.address: "0.0.0.0" has no ":port" (expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))msg"},
      {"listen v6 no brackets",
       R"toml([[listen]]
address = "::1:587"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:11: listen.address: "::1:587" needs brackets around its IPv6 address (expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))msg"},
      {"listen hostname",
       R"toml([[listen]]
address = "localhost:587"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:11: listen.address: "localhost:587" has a host name or junk where an IP address belongs (expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))msg"},
      {"listen port 0",
       R"toml([[listen]]
address = "0.0.0.0:0"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:11: listen.address: "0.0.0.0:0" has a port outside 1..65535 (expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))msg"},
      {"listen port 70000",
       R"toml([[listen]]
address = "[::]:70000"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:11: listen.address: "[::]:70000" has a port outside 1..65535 (expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))msg"},
      {"listen no address",
       R"toml([[listen]]
tls = "none"
auth = "none"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:1: [[listen]] has no address (expected address = "host:port", like "127.0.0.1:587"))msg"},
      {"metrics address bad",
       R"toml([metrics]
address = "9325"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:11: metrics.address: "9325" has no ":port" (expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))msg"},
      {"port 0",
       R"toml([upstream]
host = "smtp.example.com"
ports = [587, 0]
)toml",
       R"msg(mailferry.toml:3:15: upstream.ports: 0 is not a port (expected 1 to 65535))msg"},
      {"port 70000",
       R"toml([upstream]
host = "smtp.example.com"
ports = [70000]
)toml",
       R"msg(mailferry.toml:3:10: upstream.ports: 70000 is not a port (expected 1 to 65535))msg"},
      {"port table without port",
       R"toml([upstream]
host = "smtp.example.com"
ports = [{ tls = "implicit" }]
)toml",
       R"msg(mailferry.toml:3:10: upstream.ports entry has no port (expected { port = 2525, tls = "implicit" }))msg"},
      {"port duplicate",
       R"toml([upstream]
host = "smtp.example.com"
ports = [587, 2525, 587]
)toml",
       R"msg(mailferry.toml:3:21: upstream.ports lists port 587 with tls = "starttls" twice (expected each port once))msg"},
      {"ports empty",
       R"toml([upstream]
host = "smtp.example.com"
ports = []
)toml",
       R"msg(mailferry.toml:3:9: upstream.ports is empty (expected at least one port, like [587, 2525, 465]))msg"},
      {"host missing, no [upstream]",
       R"toml(hostname = "relay.example.lan"
)toml",
       R"msg(mailferry.toml: upstream.host is required (expected host = "smtp.example.com" under [upstream]))msg"},
      {"host missing in [upstream]",
       R"toml(hostname = "relay.example.lan"

[upstream]
ports = [587]
)toml",
       R"msg(mailferry.toml:3:1: upstream.host is required (expected host = "smtp.example.com" under [upstream]))msg"},
      {"host with port",
       R"toml([upstream]
host = "smtp.gmail.com:587"
)toml",
       R"msg(mailferry.toml:2:8: upstream.host: "smtp.gmail.com:587" contains a port (expected only the host name; ports go in upstream.ports))msg"},
      {"host url",
       R"toml([upstream]
host = "smtp://smtp.gmail.com"
)toml",
       R"msg(mailferry.toml:2:8: upstream.host: "smtp://smtp.gmail.com" is not a host name (expected a name like "smtp.example.com", without scheme or path))msg"},
      {"two password sources",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
password = "secret-1"
password_file = "/etc/mailferry/upstream.secret"
)toml",
       R"msg(mailferry.toml:5:17: upstream.password and upstream.password_file are both set (expected only one of password, password_file, password_command))msg"},
      {"password empty",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
password = ""
)toml",
       R"msg(mailferry.toml:4:12: upstream.password is empty (expected the password, or remove the key))msg"},
      {"password_command empty",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
password_command = []
)toml",
       R"msg(mailferry.toml:4:20: upstream.password_command has no command (expected the program and its arguments, like ["pass", "show", "smtp"]))msg"},
      {"oauth2 with auth plain",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "plain"
[upstream.oauth2]
provider = "google"
client_id = "x"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:4:8: [upstream.oauth2] is set but upstream.auth = "plain" (expected auth = "xoauth2", or no [upstream.oauth2]))msg"},
      {"oauth2 with auth auto (SPEC example shape)",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
[upstream.oauth2]
provider = "google"
client_id = "x"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:4:1: [upstream.oauth2] is set but upstream.auth = "auto" (expected auth = "xoauth2", or no [upstream.oauth2]))msg"},
      {"oauth2 plus password_command",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
password_command = ["get-token"]
[upstream.oauth2]
provider = "google"
client_id = "x"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:5:20: upstream.password_command is set, but [upstream.oauth2] provides the token (expected one of them))msg"},
      {"oauth2 custom without urls",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
[upstream.oauth2]
provider = "custom"
client_id = "x"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:5:1: [upstream.oauth2] provider = "custom" needs token_url (expected the provider's https:// endpoint))msg"},
      {"oauth2 google with token_url",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
[upstream.oauth2]
provider = "google"
client_id = "x"
refresh_token_file = "/r"
token_url = "https://t.example/token"
)toml",
       R"msg(mailferry.toml:9:13: upstream.oauth2.token_url is only used with provider = "custom" (expected no token_url with provider = "google"))msg"},
      {"oauth2 tenant with google",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
[upstream.oauth2]
provider = "google"
tenant = "contoso"
client_id = "x"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:7:10: upstream.oauth2.tenant is only used with provider = "microsoft" (expected no tenant with provider = "google"))msg"},
      {"oauth2 no provider",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
[upstream.oauth2]
client_id = "x"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:5:1: [upstream.oauth2] has no provider (expected provider = "microsoft", "google" or "custom"))msg"},
      {"oauth2 no client_id",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
[upstream.oauth2]
provider = "google"
refresh_token_file = "/r"
)toml",
       R"msg(mailferry.toml:5:1: [upstream.oauth2] has no client_id (expected the application id registered with the provider))msg"},
      {"oauth2 bad url",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
[upstream.oauth2]
provider = "custom"
client_id = "x"
refresh_token_file = "/r"
token_url = "t.example/token"
device_url = "https://t.example/device"
)toml",
       R"msg(mailferry.toml:9:13: upstream.oauth2.token_url: "t.example/token" is not a URL (expected "https://..."))msg"},
      {"xoauth2 without token source",
       R"toml([upstream]
host = "smtp.example.com"
username = "u"
auth = "xoauth2"
)toml",
       R"msg(mailferry.toml:4:8: upstream.auth = "xoauth2" needs a token (expected [upstream.oauth2], or password_command printing an access token))msg"},
      {"username without password",
       R"toml([upstream]
host = "smtp.example.com"
username = "apikey"
)toml",
       R"msg(mailferry.toml:3:12: upstream.username is set but no password (expected password, password_file or password_command))msg"},
      {"password without username",
       R"toml([upstream]
host = "smtp.example.com"
password_file = "/etc/mailferry/upstream.secret"
)toml",
       R"msg(mailferry.toml:3:17: upstream.password_file is set but upstream.username is not (expected username = "..."))msg"},
      {"auth plain without credentials",
       R"toml([upstream]
host = "smtp.example.com"
auth = "plain"
)toml",
       R"msg(mailferry.toml:3:8: upstream.auth = "plain" needs credentials (expected username and password, password_file or password_command))msg"},
      {"tls listener without [tls]",
       R"toml([[listen]]
address = "0.0.0.0:587"
tls = "starttls"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:7: listener "0.0.0.0:587" has tls = "starttls" but there is no [tls] section (expected [tls] with cert_file and key_file))msg"},
      {"listener with default tls and no [tls] points at its table",
       R"toml([[listen]]
address = "127.0.0.1:25"
tls = "none"
auth = "none"

[[listen]]
address = "0.0.0.0:587"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:6:1: listener "0.0.0.0:587" has tls = "starttls" but there is no [tls] section (expected [tls] with cert_file and key_file))msg"},
      {"tls none with auth required",
       R"toml([[listen]]
address = "127.0.0.1:25"
tls = "none"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:7: listener "127.0.0.1:25" has tls = "none" and auth = "required": AUTH is only offered over TLS, so it could never accept mail (expected auth = "none", or tls = "starttls"))msg"},
      {"proxy_protocol without proxy_from",
       R"toml([[listen]]
address = "127.0.0.1:2525"
tls = "none"
auth = "none"
proxy_protocol = true
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:5:18: listener "127.0.0.1:2525" has proxy_protocol = true but no proxy_from (expected proxy_from = ["10.0.0.0/8"], the load balancers' networks))msg"},
      {"proxy_from without proxy_protocol",
       R"toml([[listen]]
address = "127.0.0.1:2525"
tls = "none"
auth = "none"
proxy_from = ["10.0.0.0/8"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:5:14: listener "127.0.0.1:2525" has proxy_from but not proxy_protocol = true (expected proxy_protocol = true, or no proxy_from))msg"},
      {"duplicate listener",
       R"toml([[listen]]
address = "127.0.0.1:25"
tls = "none"
auth = "none"
[[listen]]
address = "127.0.0.1:25"
tls = "none"
auth = "none"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:6:11: listener "127.0.0.1:25" is given twice (expected each address once))msg"},
      {"[tls] without key_file",
       R"toml([[listen]]
address = "0.0.0.0:587"
[tls]
cert_file = "/etc/mailferry/cert.pem"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:1: [tls] has no key_file (expected key_file = "/etc/mailferry/key.pem"))msg"},
      {"user duplicate",
       R"toml([[user]]
name = "wp"
password_hash = "$y$a"
[[user]]
name = "wp"
password_hash = "$y$b"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:5:8: [[user]] "wp" is defined twice (expected each name once))msg"},
      {"user without password_hash",
       R"toml([[user]]
name = "wp"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:1: [[user]] "wp" has no password_hash (expected the hash printed by `mailferry passwd`))msg"},
      {"user without name",
       R"toml([[user]]
password_hash = "$y$a"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:1: [[user]] has no name (expected name = "wordpress"))msg"},
      {"user hash empty",
       R"toml([[user]]
name = "wp"
password_hash = ""
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:17: user.password_hash is empty (expected the crypt(3) hash printed by `mailferry passwd`))msg"},
      {"user hash plaintext",
       R"toml([[user]]
name = "wp"
password_hash = "hunter2"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:3:17: user.password_hash is not a crypt(3) hash (expected the "$y$..." or "$6$..." line printed by `mailferry passwd`, not the password itself))msg"},
      {"user name with colon",
       R"toml([[user]]
name = "wp:1"
password_hash = "$y$a"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:8: user.name: "wp:1" contains a space, control character or ":" (expected a login name like "wordpress"))msg"},
      {"user allowed_senders empty",
       R"toml([[user]]
name = "wp"
password_hash = "$y$a"
allowed_senders = []
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:4:19: user.allowed_senders is empty (expected at least one address, or remove the key to allow any sender))msg"},
      {"user allowed_senders bad",
       R"toml([[user]]
name = "wp"
password_hash = "$y$a"
allowed_senders = ["wordpress"]
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:4:19: user.allowed_senders: "wordpress" is not an address or domain (expected "user@example.com" or "@example.com"))msg"},
      {"rewrite not an address",
       R"toml([rewrite]
envelope_from = "relay"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:17: rewrite.envelope_from: "relay" is not an address (expected local@domain, like "relay@example.com"))msg"},
      {"invalid TOML",
       R"toml(hostname = "relay.example.lan"
spool_dir = 
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:13: invalid TOML: key-value pair: expected value, saw '\n')msg"},
      {"duplicate key TOML",
       R"toml(hostname = "a"
hostname = "b"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:2:12: invalid TOML: key-value pair: cannot redefine existing string 'hostname')msg"},
      {"hostname empty",
       R"toml(hostname = ""
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:12: hostname is empty (expected a value, or remove the key for the default))msg"},
      {"hostname with space",
       R"toml(hostname = "relay example"
[upstream]
host = "smtp.example.com"
)toml",
       R"msg(mailferry.toml:1:12: hostname: "relay example" contains a space or control character (expected a host name like "relay.example.lan"))msg"},
      {"earliest of several errors wins",
       R"toml(log_format = "xml"
hostname = 1
[upstream]
host = "smtp.example.com"
auth = "bogus"
)toml",
       R"msg(mailferry.toml:1:14: log_format: unknown value "xml" (expected one of: "text", "json"))msg"},
  }));
  CAPTURE(name, toml);
  const std::string message = error_of(toml);
  CHECK(message == expected);
  CHECK(message.find('\n') == std::string::npos);
}

TEST_CASE("secrets never appear in error messages", "[config][load_config]") {
  const std::string plaintext = error_of("[[user]]\nname = \"wp\"\npassword_hash = \"hunter2\"\n");
  CHECK(plaintext.find("hunter2") == std::string::npos);
  const std::string two_sources = error_of(
      "[upstream]\nhost = \"h.example\"\nusername = \"u\"\npassword = \"s3cret\"\npassword_command = [\"x\"]\n");
  CHECK(two_sources.find("s3cret") == std::string::npos);
}

TEST_CASE("an error without a source name has no prefix", "[config][load_config]") {
  auto result = parse_config("hostname = 1\n", "");
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message == "wrong type for hostname: an integer (expected a string)");
}

TEST_CASE("load_config reads a file and names it in errors", "[config][load_config]") {
  char path[] = "/tmp/mailferry-config-test-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);

  SECTION("a good file") {
    std::ofstream(path) << "[upstream]\nhost = \"smtp.example.com\"\n";
    auto result = load_config(path);
    REQUIRE(result.ok());
    CHECK(result->source_path == path);
    CHECK(result->upstream.host == "smtp.example.com");
  }
  SECTION("a bad file") {
    std::ofstream(path) << "[upstream]\nhost = \"smtp.example.com\"\nport = 587\n";
    auto result = load_config(path);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message ==
          std::string(path) + R"(:3:1: unknown key "port" in [upstream]; did you mean "ports"? (expected one of: host, ports, username, password, password_file, password_command, auth, ca_file, connect_timeout, max_rate, oauth2))");
  }
  unlink(path);

  SECTION("a missing file") {
    auto result = load_config(path);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message ==
          std::string(path) + ": cannot read config: No such file or directory (create it or pass -c FILE)");
    CHECK(result.error().sys_errno == ENOENT);
  }
  SECTION("a directory") {
    auto result = load_config("/");
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message == "/: cannot read config: Is a directory (create it or pass -c FILE)");
    CHECK(result.error().sys_errno == EISDIR);
  }
}

TEST_CASE("validate_config applies the cross-key rules to a changed Config", "[config][load_config]") {
  auto result = parse_config(spec_with_password(), "mailferry.toml");
  REQUIRE(result.ok());
  Config c = *result;
  CHECK(validate_config(c).ok());

  SECTION("no upstream host") {
    c.upstream.host.clear();
    auto v = validate_config(c);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().message ==
          R"(mailferry.toml: upstream.host is required (expected host = "smtp.example.com" under [upstream]))");
  }
  SECTION("a TLS listener without [tls]") {
    c.tls.reset();
    auto v = validate_config(c);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().message ==
          R"(mailferry.toml: listener "0.0.0.0:587" has tls = "starttls" but there is no [tls] section (expected [tls] with cert_file and key_file))");
  }
  SECTION("two password sources") {
    c.upstream.password = mailferry::Secret("s3cret");
    auto v = validate_config(c);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().message ==
          "mailferry.toml: upstream.password and upstream.password_file are both set (expected only one of "
          "password, password_file, password_command)");
  }
  SECTION("an environment-only config names no file") {
    c.source_path.clear();
    c.users.push_back(c.users[0]);
    auto v = validate_config(c);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().message == R"([[user]] "wordpress" is defined twice (expected each name once))");
  }
}

namespace {

// examples/mailferry.toml, found from the working directory (the build tree or the source root),
// without a compile definition: walk up until a directory holds both the example and this module.
std::string find_example() {
  std::string dir = ".";
  for (int depth = 0; depth < 5; ++depth) {
    const std::string candidate = dir + "/examples/mailferry.toml";
    if (std::ifstream(candidate) && std::ifstream(dir + "/src/config/load_config.cpp")) return candidate;
    dir += "/..";
  }
  return {};
}

}  // namespace

TEST_CASE("examples/mailferry.toml loads", "[config][load_config]") {
  const std::string path = find_example();
  if (path.empty()) {
    WARN("examples/mailferry.toml not found from the working directory; skipped");
    return;
  }
  auto result = load_config(path);
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.ok());
  for (const Listen& l : result->listen) CHECK(l.host == "127.0.0.1");
}
