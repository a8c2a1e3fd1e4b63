// env_overlay.tests.cpp: MAILFERRY_* variables over (or instead of) the file: every form, precedence,
// NAME_FILE indirection, errors naming the variable, unknown-name warnings and check-config's marks.
#include "mailferry/config/env_overlay.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>

#include "mailferry/config/render_config.hpp"

using namespace mailferry::config;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view minimal_file = R"toml(
hostname = "file.example"
[upstream]
host = "file-smtp.example.com"
ports = [587]
[queue]
max_age = "1h"
)toml";

const Environment minimal_env{{"MAILFERRY_UPSTREAM_HOST", "smtp.example.com"}};

LoadedConfig loaded(std::string_view toml, const Environment& env, const std::string& source = "mailferry.toml") {
  auto result = parse_config(toml, source, env);
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.ok());
  return *result;
}

Config env_only(Environment env) {
  env.insert(env.begin(), minimal_env.begin(), minimal_env.end());
  return loaded("", env, "").config;
}

std::string env_error(Environment env, std::string_view toml = "") {
  env.insert(env.begin(), minimal_env.begin(), minimal_env.end());
  auto result = parse_config(toml, toml.empty() ? "" : "mailferry.toml", env);
  REQUIRE_FALSE(result.ok());
  return result.error().message;
}

// A temporary file holding `text`, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/mailferry-env-test-XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path_ = name;
    std::ofstream(path_) << text;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

TEST_CASE("the environment alone is a configuration", "[config][env]") {
  const LoadedConfig l = loaded("", {{"MAILFERRY_UPSTREAM_HOST", "smtp.example.com"},
                                     {"MAILFERRY_HOSTNAME", "relay.example.lan"},
                                     {"PATH", "/usr/bin"}},
                                "");
  CHECK(l.config.source_path.empty());
  CHECK(l.config.upstream.host == "smtp.example.com");
  CHECK(l.config.hostname == "relay.example.lan");
  CHECK(l.config.listen.size() == 1);   // the loopback default, as for a file without [[listen]]
  CHECK(l.warnings.empty());
  CHECK(l.config.env_sources.at("upstream.host") == "MAILFERRY_UPSTREAM_HOST");
}

TEST_CASE("a variable wins over the file's key and the rest of the file stays", "[config][env]") {
  const LoadedConfig l = loaded(minimal_file, minimal_env);
  CHECK(l.config.upstream.host == "smtp.example.com");
  CHECK(l.config.hostname == "file.example");
  CHECK(l.config.queue.max_age == 1h);
  CHECK(l.config.source_path == "mailferry.toml");
  CHECK(l.config.env_sources.size() == 1);
}

TEST_CASE("scalar keys at every level", "[config][env]") {
  const Config c = env_only({{"MAILFERRY_SPOOL_DIR", "/srv/spool"},
                             {"MAILFERRY_RUN_AS", "mail"},
                             {"MAILFERRY_MAX_MESSAGE_SIZE", "10MiB"},
                             {"MAILFERRY_LOG_FORMAT", "json"},
                             {"MAILFERRY_QUEUE_MAX_AGE", "2d"},
                             {"MAILFERRY_UPSTREAM_CONNECT_TIMEOUT", "5s"},
                             {"MAILFERRY_UPSTREAM_MAX_RATE", "100/h"},
                             {"MAILFERRY_UPSTREAM_CA_FILE", "/etc/ssl/ca.pem"},
                             {"MAILFERRY_METRICS_ADDRESS", "127.0.0.1:9325"},
                             {"MAILFERRY_REWRITE_ENVELOPE_FROM", "relay@example.com"},
                             {"MAILFERRY_TLS_CERT_FILE", "/etc/mailferry/cert.pem"},
                             {"MAILFERRY_TLS_KEY_FILE", "/etc/mailferry/key.pem"}});
  CHECK(c.spool_dir == "/srv/spool");
  CHECK(c.run_as == "mail");
  CHECK(c.max_message_size == 10u << 20);
  CHECK(c.log_format == LogFormat::json);
  CHECK(c.queue.max_age == std::chrono::hours(48));
  CHECK(c.upstream.connect_timeout == 5s);
  CHECK(c.upstream.max_rate_count == 100);
  CHECK(c.upstream.ca_file == "/etc/ssl/ca.pem");
  CHECK(c.metrics.address == "127.0.0.1:9325");
  REQUIRE(c.rewrite);
  CHECK(c.rewrite->envelope_from == "relay@example.com");
  REQUIRE(c.tls);
  CHECK(c.tls->cert_file == "/etc/mailferry/cert.pem");
  CHECK(c.tls->key_file == "/etc/mailferry/key.pem");
  CHECK(c.env_sources.at("tls.cert_file") == "MAILFERRY_TLS_CERT_FILE");
}

TEST_CASE("arrays are comma-separated", "[config][env]") {
  const Config c = env_only({{"MAILFERRY_TRUSTED_NETWORKS", "10.0.0.0/8, fd00::/8"},
                             {"MAILFERRY_QUEUE_RETRY_SCHEDULE", "1m,5m,1h"},
                             {"MAILFERRY_UPSTREAM_USERNAME", "apikey"},
                             {"MAILFERRY_UPSTREAM_PASSWORD_COMMAND", "pass,show,smtp"}});
  REQUIRE(c.trusted_networks.size() == 2);
  CHECK(c.trusted_networks[0].text == "10.0.0.0/8");
  CHECK(c.trusted_networks[1].text == "fd00::/8");
  CHECK(c.queue.retry_schedule == std::vector<Millis>{1min, 5min, 1h});
  CHECK(c.upstream.password_command == std::vector<std::string>{"pass", "show", "smtp"});
}

TEST_CASE("an empty array variable is an empty array", "[config][env]") {
  const Config c = env_only({{"MAILFERRY_LISTEN", ""}, {"MAILFERRY_TRUSTED_NETWORKS", ""}});
  CHECK(c.listen.empty());
  CHECK(c.trusted_networks.empty());
}

TEST_CASE("upstream ports take PORT or PORT/TLS", "[config][env]") {
  const Config c = env_only({{"MAILFERRY_UPSTREAM_PORTS", "587,2525/none,465,2465/implicit"}});
  CHECK(c.upstream.ports == std::vector<UpstreamPort>{{587, UpstreamTls::starttls},
                                                      {2525, UpstreamTls::none},
                                                      {465, UpstreamTls::implicit},
                                                      {2465, UpstreamTls::implicit}});
}

TEST_CASE("the one-line listen form: address, tls, auth per entry", "[config][env]") {
  const Config c = env_only({{"MAILFERRY_LISTEN", "0.0.0.0:587 starttls required, 127.0.0.1:25 none none, [::1]:465 implicit"},
                             {"MAILFERRY_TLS_CERT_FILE", "/c.pem"},
                             {"MAILFERRY_TLS_KEY_FILE", "/k.pem"}});
  REQUIRE(c.listen.size() == 3);
  CHECK(c.listen[0].address == "0.0.0.0:587");
  CHECK(c.listen[0].tls == ListenTls::starttls);
  CHECK(c.listen[0].auth == ListenAuth::required);
  CHECK(c.listen[1].address == "127.0.0.1:25");
  CHECK(c.listen[1].tls == ListenTls::none);
  CHECK(c.listen[1].auth == ListenAuth::none);
  CHECK(c.listen[2].host == "::1");
  CHECK(c.listen[2].tls == ListenTls::implicit);
  CHECK(c.listen[2].auth == ListenAuth::required);
}

TEST_CASE("MAILFERRY_USERS: name:hash or name:hash:senders, one per line", "[config][env]") {
  const std::string hash1 = "$y$j9T$abc/def.ghi$0123456789ABCDEFabcdef./xyz";
  const std::string hash2 = "$6$salt$Zm9vYmFy/baz.qux";
  // Blank lines, indentation and CRLF are tolerated: the variable often comes from a YAML block.
  const Config c = env_only(
      {{"MAILFERRY_USERS", "wordpress:" + hash1 + "\n\n  app:" + hash2 + ":a@example.com, @example.org\r\n"}});
  REQUIRE(c.users.size() == 2);
  CHECK(c.users[0].name == "wordpress");
  CHECK(c.users[0].password_hash == hash1);
  CHECK(c.users[0].allowed_senders.empty());
  CHECK(c.users[1].name == "app");
  CHECK(c.users[1].password_hash == hash2);
  CHECK(c.users[1].allowed_senders == std::vector<std::string>{"a@example.com", "@example.org"});
  CHECK(c.env_sources.at("user") == "MAILFERRY_USERS");
}

TEST_CASE("arrays of tables from a variable replace the file's", "[config][env]") {
  const LoadedConfig l = loaded(std::string(minimal_file) + R"toml(
[[user]]
name = "old"
password_hash = "$6$x$y"
)toml",
                                {{"MAILFERRY_USERS", "new:$6$a$b"}});
  REQUIRE(l.config.users.size() == 1);
  CHECK(l.config.users[0].name == "new");
}

TEST_CASE("a key that ends in _file is set by its own variable, not read", "[config][env]") {
  const Config c = env_only({{"MAILFERRY_UPSTREAM_USERNAME", "apikey"},
                             {"MAILFERRY_UPSTREAM_PASSWORD_FILE", "/run/secrets/smtp"}});
  CHECK(c.upstream.password_file == "/run/secrets/smtp");
  CHECK(c.upstream.password.empty());
  CHECK(c.env_sources.at("upstream.password_file") == "MAILFERRY_UPSTREAM_PASSWORD_FILE");
}

TEST_CASE("NAME_FILE reads NAME's value from a file, one trailing newline removed", "[config][env]") {
  TempFile password("hunter2\n");
  TempFile host("smtp.example.com");
  const LoadedConfig l = loaded("",
                                {{"MAILFERRY_UPSTREAM_HOST_FILE", host.path()},
                                 {"MAILFERRY_UPSTREAM_USERNAME", "apikey"},
                                 {"MAILFERRY_UPSTREAM_PASSWORD_FILE_FILE", password.path()}},
                                "");
  CHECK(l.config.upstream.host == "smtp.example.com");
  // password_file's own _FILE form: its value (a path) comes from a file.
  CHECK(l.config.upstream.password_file == "hunter2");
  CHECK(l.config.env_sources.at("upstream.host") == "MAILFERRY_UPSTREAM_HOST_FILE");
  CHECK(l.warnings.empty());
}

TEST_CASE("a secret read through _FILE keeps inner newlines and only one trailing one goes", "[config][env]") {
  TempFile password("pass word\n\n");
  const Config c = env_only({{"MAILFERRY_UPSTREAM_USERNAME", "apikey"},
                             {"MAILFERRY_UPSTREAM_PASSWORD_FILE_FILE", password.path()}});
  CHECK(c.upstream.password_file == "pass word\n");
}

TEST_CASE("an unreadable NAME_FILE is an error naming the variable", "[config][env]") {
  CHECK(env_error({{"MAILFERRY_UPSTREAM_PASSWORD_FILE_FILE", "/nonexistent/secret"}}) ==
        R"(MAILFERRY_UPSTREAM_PASSWORD_FILE_FILE: cannot read "/nonexistent/secret": No such file or directory)");
}

TEST_CASE("NAME and NAME_FILE together are an error", "[config][env]") {
  TempFile host("smtp.example.com");
  auto result = parse_config("", "", {{"MAILFERRY_UPSTREAM_HOST", "a.example"},
                                      {"MAILFERRY_UPSTREAM_HOST_FILE", host.path()}});
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message ==
        "MAILFERRY_UPSTREAM_HOST and MAILFERRY_UPSTREAM_HOST_FILE are both set (expected only one of them)");
}

TEST_CASE("a malformed value is one line naming the variable", "[config][env]") {
  auto [env, message] = GENERATE(table<Environment, std::string>({
      {{{"MAILFERRY_QUEUE_MAX_AGE", "soon"}},
       R"(MAILFERRY_QUEUE_MAX_AGE: queue.max_age: "soon" does not start with digits)"},
      {{{"MAILFERRY_UPSTREAM_PORTS", "587,abc"}},
       R"(MAILFERRY_UPSTREAM_PORTS: "abc" is not a port (expected PORT or PORT/TLS, like 587,2525/none,2465/implicit))"},
      {{{"MAILFERRY_UPSTREAM_PORTS", "587,,465"}}, "MAILFERRY_UPSTREAM_PORTS: has an empty entry"},
      {{{"MAILFERRY_UPSTREAM_PORTS", "70000"}}, "MAILFERRY_UPSTREAM_PORTS: upstream.ports: 70000 is not a port"},
      {{{"MAILFERRY_UPSTREAM_PORTS", "2525/tls"}}, R"(MAILFERRY_UPSTREAM_PORTS: upstream.ports.tls: unknown value "tls")"},
      {{{"MAILFERRY_TRUSTED_NETWORKS", "10.0.0.1/8"}}, "MAILFERRY_TRUSTED_NETWORKS: trusted_networks:"},
      {{{"MAILFERRY_LOG_FORMAT", "xml"}}, R"(MAILFERRY_LOG_FORMAT: log_format: unknown value "xml")"},
      {{{"MAILFERRY_LISTEN", "127.0.0.1:25 none none extra"}}, "MAILFERRY_LISTEN: \"127.0.0.1:25 none none extra\" has more"},
      {{{"MAILFERRY_LISTEN", "127.0.0.1:2525 none required"}}, "MAILFERRY_LISTEN: listener \"127.0.0.1:2525\" has tls = \"none\" and auth = \"required\""},
      {{{"MAILFERRY_USERS", "wordpress"}}, R"(MAILFERRY_USERS: line 1 has no ":")"},
      {{{"MAILFERRY_USERS", "wordpress:plaintext"}}, "MAILFERRY_USERS: user.password_hash is not a crypt(3) hash"},
      {{{"MAILFERRY_UPSTREAM_HOST", ""}}, "MAILFERRY_UPSTREAM_HOST: upstream.host is empty"},
      {{{"MAILFERRY_UPSTREAM_USERNAME", "apikey"}}, "MAILFERRY_UPSTREAM_USERNAME: upstream.username is set but no password"},
      {{{"MAILFERRY_UPSTREAM_PASSWORD", "********"}}, "MAILFERRY_UPSTREAM_PASSWORD: upstream.password is \"********\""},
      {{{"MAILFERRY_MAX_MESSAGE_SIZE", "big"}}, "MAILFERRY_MAX_MESSAGE_SIZE: max_message_size: \"big\""},
  }));
  CAPTURE(env);
  const std::string error = env_error(env);
  CHECK(error.rfind(message, 0) == 0);
  CHECK(error.find('\n') == std::string::npos);
}

TEST_CASE("a malformed USERS line is named by number, never echoed", "[config][env]") {
  const std::string error = env_error({{"MAILFERRY_USERS", "a:$6$x$y\nsecretpassword"}});
  CHECK(error.rfind("MAILFERRY_USERS: line 2 has no", 0) == 0);
  CHECK(error.find("secretpassword") == std::string::npos);
}

TEST_CASE("the file's own mistakes still name the file and line", "[config][env]") {
  CHECK(env_error({}, "hostname = 5\n") == "mailferry.toml:1:12: wrong type for hostname: an integer (expected a string)");
}

TEST_CASE("unknown MAILFERRY_* names are warnings; MAILFERRY_CONFIG and other names are not", "[config][env]") {
  const LoadedConfig l = loaded("", {{"MAILFERRY_UPSTREAM_HOST", "smtp.example.com"},
                                     {"MAILFERRY_UPSTREAM_HSOT", "x"},
                                     {"MAILFERRY_TLS_CERT", "x"},
                                     {"MAILFERRY_CONFIG", "/etc/x.toml"},
                                     {"HOME", "/root"}},
                                "");
  REQUIRE(l.warnings.size() == 2);
  CHECK(l.warnings[0] ==
        R"(MAILFERRY_UPSTREAM_HSOT is not a mailferry setting; ignored; did you mean "MAILFERRY_UPSTREAM_HOST"?)");
  CHECK(l.warnings[1].rfind("MAILFERRY_TLS_CERT is not a mailferry setting; ignored", 0) == 0);
}

TEST_CASE("check-config marks each value from the environment, secrets still masked", "[config][env]") {
  const LoadedConfig l = loaded(minimal_file, {{"MAILFERRY_UPSTREAM_HOST", "smtp.example.com"},
                                               {"MAILFERRY_UPSTREAM_USERNAME", "apikey"},
                                               {"MAILFERRY_UPSTREAM_PASSWORD", "hunter2"},
                                               {"MAILFERRY_LISTEN", "127.0.0.1:2525 none none"},
                                               {"MAILFERRY_QUEUE_MAX_AGE", "2d"}});
  const std::string text = render_config(l.config);
  CHECK(text.find("# mailferry effective configuration from mailferry.toml and the environment") == 0);
  CHECK(text.find("host = \"smtp.example.com\"   # from MAILFERRY_UPSTREAM_HOST\n") != std::string::npos);
  CHECK(text.find("password = \"********\"   # from MAILFERRY_UPSTREAM_PASSWORD\n") != std::string::npos);
  CHECK(text.find("hunter2") == std::string::npos);
  CHECK(text.find("[[listen]]   # from MAILFERRY_LISTEN\n") != std::string::npos);
  CHECK(text.find("max_age = \"2d\"   # from MAILFERRY_QUEUE_MAX_AGE\n") != std::string::npos);
  CHECK(text.find("hostname = \"file.example\"\n") != std::string::npos);   // from the file: no mark
  CHECK(text.find("ports = [587]\n") != std::string::npos);

  // The marked output is still a valid config that loads back (password aside, which is masked).
  auto back = parse_config(text, "rendered.toml", {{"MAILFERRY_UPSTREAM_PASSWORD", "hunter2"}});
  INFO((back ? std::string() : back.error().message));
  REQUIRE(back.ok());
  CHECK(back->config.upstream.host == "smtp.example.com");
  CHECK(back->config.queue.max_age == std::chrono::hours(48));
}

TEST_CASE("config_file_path: -c, then MAILFERRY_CONFIG, then the default", "[config][env]") {
  CHECK(config_file_path("a.toml", {{"MAILFERRY_CONFIG", "b.toml"}}) == "a.toml");
  CHECK(config_file_path("", {{"MAILFERRY_CONFIG", "b.toml"}}) == "b.toml");
  CHECK(config_file_path("", {{"MAILFERRY_CONFIG", ""}}) == default_config_path);
  CHECK(config_file_path("", {}) == default_config_path);
}

TEST_CASE("load_config: a named file must exist; with no file the environment is the config", "[config][env]") {
  auto named = load_config("/nonexistent/mailferry.toml", minimal_env);
  REQUIRE_FALSE(named.ok());
  CHECK(named.error().message.rfind("/nonexistent/mailferry.toml: cannot read config:", 0) == 0);

  Environment via_env = minimal_env;
  via_env.emplace_back("MAILFERRY_CONFIG", "/nonexistent/mailferry.toml");
  auto by_variable = load_config("", via_env);
  REQUIRE_FALSE(by_variable.ok());
  CHECK(by_variable.error().message.rfind("/nonexistent/mailferry.toml: cannot read config:", 0) == 0);

  TempFile file{std::string(minimal_file)};
  auto both = load_config(file.path(), minimal_env);
  REQUIRE(both.ok());
  CHECK(both->config.upstream.host == "smtp.example.com");
  CHECK(both->config.hostname == "file.example");

  // The default path: only meaningful where it does not exist (a test machine, a container).
  if (::access(std::string(default_config_path).c_str(), F_OK) != 0) {
    auto env_only_load = load_config("", minimal_env);
    REQUIRE(env_only_load.ok());
    CHECK(env_only_load->config.source_path.empty());
    auto nothing = load_config("", {{"PATH", "/usr/bin"}});
    REQUIRE_FALSE(nothing.ok());
    CHECK(nothing.error().message.rfind(std::string(default_config_path) + ": cannot read config:", 0) == 0);
  }
}
