// render_config.tests.cpp: check-config's output is valid TOML that loads back to the same Config,
// with secrets masked.
#include "mailferry/config/render_config.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <utility>

#include "mailferry/config/load_config.hpp"
#include "../../support/config_round_trip.hpp"

using namespace mailferry::config;
using mailferry::test::unmasked;
using mailferry::test::with_stand_ins;
using mailferry::test::stand_in_password;

namespace {

Config parsed(std::string_view toml) {
  auto result = parse_config(toml, "mailferry.toml");
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.ok());
  return *result;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("render_config output loads back to an equal Config", "[config][render_config]") {
  const std::string toml = GENERATE(as<std::string>{},
      // minimal: every default printed
      "[upstream]\nhost = \"smtp.example.com\"\n",
      // no listener at all
      "listen = []\ntrusted_networks = []\n[upstream]\nhost = \"h.example\"\n",
      // the SPEC's keys with a password, odd characters and explicit port tables
      R"toml(
hostname = "relay.example.lan"
spool_dir = "/srv/spool \"quoted\" \\ back"
run_as = "mailferry"
max_message_size = "25MB"
trusted_networks = ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]
log_format = "json"

[[listen]]
address = "[::1]:587"
tls = "starttls"

[[listen]]
address = "127.0.0.1:2525"
tls = "starttls"
proxy_protocol = true
proxy_from = ["10.0.0.0/8"]

[[listen]]
address = "127.0.0.1:25"
tls = "none"
auth = "none"

[tls]
cert_file = "/etc/mailferry/cert.pem"
key_file = "/etc/mailferry/key.pem"

[[user]]
name = "wordpress"
password_hash = "$y$j9T$abc"
allowed_senders = ["wordpress@example.com", "@example.org"]

[[user]]
name = "cron"
password_hash = "$6$xyz"

[upstream]
host = "smtp.example.com"
ports = [587, { port = 2525, tls = "implicit" }, { port = 25, tls = "none" }, { port = 465, tls = "starttls" }, 465]
username = "apikey"
password = "p\"a\\s\ts"
auth = "login"
ca_file = "/etc/ssl/provider.pem"
connect_timeout = "1500ms"
max_rate = "100/h"

[rewrite]
envelope_from = "relay@example.com"
header_from = ""

[queue]
retry_schedule = ["30s", "90s", "1h", "2d"]
max_age = "3d"

[metrics]
address = "[::1]:9325"
)toml",
      // OAuth2, custom provider
      R"toml(
[upstream]
host = "smtp.example.com"
username = "me@example.com"
auth = "xoauth2"
[upstream.oauth2]
provider = "custom"
client_id = "abc"
client_secret_file = "/etc/mailferry/client.secret"
refresh_token_file = "/var/lib/mailferry/oauth.refresh"
token_url = "https://login.example/token"
device_url = "https://login.example/device"
)toml",
      // OAuth2, microsoft with a tenant; a password command elsewhere is not allowed, so none here
      R"toml(
[upstream]
host = "smtp.office365.com"
username = "me@contoso.com"
auth = "xoauth2"
[upstream.oauth2]
provider = "microsoft"
tenant = "contoso.onmicrosoft.com"
client_id = "abc"
refresh_token_file = "/var/lib/mailferry/oauth.refresh"
)toml",
      // a password command
      R"toml(
[upstream]
host = "smtp.example.com"
username = "u"
password_command = ["pass", "show", "smtp"]
)toml");
  CAPTURE(toml);
  const Config original = parsed(toml);
  const std::string rendered = render_config(original);
  CAPTURE(rendered);
  CHECK(parsed(unmasked(rendered)) == with_stand_ins(original));
  // Stable: rendering what was read back gives the same text.
  CHECK(render_config(parsed(unmasked(rendered))) == rendered);
}

TEST_CASE("render_config masks secrets", "[config][render_config]") {
  const Config c = parsed(R"toml(
[[user]]
name = "wordpress"
password_hash = "$y$j9T$supersecrethash"
[upstream]
host = "smtp.example.com"
username = "apikey"
password = "SG.very-secret-key"
)toml");
  const std::string out = render_config(c);
  CHECK_FALSE(contains(out, "supersecrethash"));
  CHECK_FALSE(contains(out, "very-secret-key"));
  CHECK(contains(out, "password_hash = \"********\"\n"));
  CHECK(contains(out, "password = \"********\"\n"));
  CHECK(contains(out, "username = \"apikey\"\n"));
}

TEST_CASE("masked secrets fed back are refused by name", "[config][render_config]") {
  const Config c = parsed(R"toml(
[[user]]
name = "wordpress"
password_hash = "$y$j9T$hash"
[upstream]
host = "smtp.example.com"
username = "apikey"
password = "secret"
)toml");
  const std::string out = render_config(c);
  auto back = parse_config(out, "printed.toml");
  REQUIRE_FALSE(back.ok());
  CHECK(back.error().message ==
        R"(printed.toml:16:17: user.password_hash is "********", the mask check-config prints (expected the real secret))");
  // With the hash restored, the password's mask is the next thing refused.
  std::string hash_restored = unmasked(out);
  const auto at = hash_restored.find(stand_in_password);
  hash_restored.replace(at - 1, stand_in_password.size() + 2, "\"********\"");
  auto only_password_masked = parse_config(hash_restored, "printed.toml");
  REQUIRE_FALSE(only_password_masked.ok());
  CHECK(only_password_masked.error().message ==
        R"(printed.toml:22:12: upstream.password is "********", the mask check-config prints (expected the real secret))");
}

TEST_CASE("render_config prints defaults in the SPEC's spelling", "[config][render_config]") {
  Config c = parsed("hostname = \"relay.example.lan\"\n[upstream]\nhost = \"smtp.example.com\"\n");
  CHECK(render_config(c) == R"toml(# mailferry effective configuration from mailferry.toml; secrets are masked
hostname = "relay.example.lan"
spool_dir = "/var/spool/mailferry"
# run_as is not set: serve keeps running as the user who started it
max_message_size = "25MiB"
trusted_networks = ["127.0.0.0/8", "::1/128"]
log_format = "text"

[[listen]]
address = "127.0.0.1:2525"
tls = "none"
auth = "none"

[upstream]
host = "smtp.example.com"
ports = [587, 2525, 465]
auth = "auto"
ca_file = ""   # the system trust store
connect_timeout = "10s"
max_rate = ""   # unlimited

[queue]
retry_schedule = ["30s", "2m", "10m", "30m", "1h"]
max_age = "5d"

[metrics]
address = ""   # off
)toml");
}

TEST_CASE("render_config escapes control characters as TOML does", "[config][render_config]") {
  Config c = parsed("[upstream]\nhost = \"smtp.example.com\"\n");
  c.spool_dir = std::string("/a\x01" "b\x7f", 5);
  const std::string out = render_config(c);
  CHECK(contains(out, R"(spool_dir = "/a\u0001b\u007F")"));
  CHECK(parsed(out).spool_dir == c.spool_dir);
}
