// probe.cpp: each configured port, in order, with the time of each step.
#include "daemon/probe.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "daemon/credentials.hpp"
#include "mailferry/config/units.hpp"
#include "net/upstream.hpp"
#include "tls/tls_engine.hpp"

namespace mailferry::daemon {
namespace {

std::string ms(std::optional<Duration> d) { return std::to_string(d ? d->count() : 0) + " ms"; }

// Words a home-lab user understands, for each verdict.
std::string explain(const net::PortAttempt& a, const config::Upstream& up) {
  const std::string port = std::to_string(a.port);
  if (a.verdict == "ok") {
    std::string steps = "connect " + ms(a.connected) + ", banner " + ms(a.banner);
    if (a.tls_done) steps += ", TLS " + ms(a.tls_done);
    if (a.auth_done) steps += ", AUTH " + ms(a.auth_done);
    return steps;
  }
  if (a.verdict == "timeout" && a.connected) {
    return "port " + port + " accepted the connection but the server never greeted (" + a.detail +
           ") — a tarpit, or a proxy in front of a blocked port";
  }
  if (a.verdict == "timeout") {
    return "port " + port + " timed out after " + config::format_duration(up.connect_timeout) +
           " — your ISP or a firewall probably blocks it";
  }
  if (a.verdict == "refused") return "nothing accepts connections on port " + port + " at " + up.host;
  if (a.verdict == "starttls_missing") {
    return "the server's EHLO did not offer STARTTLS (a middlebox may strip it); no credentials and no mail "
           "were sent on this port";
  }
  if (a.verdict == "certificate") return "the server's certificate was not accepted: " + a.detail;
  if (a.verdict == "auth_rejected") {
    return "the provider refused the credentials: " + a.detail + " — check username and password";
  }
  if (a.verdict == "rejected") return "the provider refused the session: " + a.detail;
  return a.detail;
}

std::string verdict_words(const std::string& v) {
  if (v == "starttls_missing") return "STARTTLS missing";
  if (v == "auth_rejected") return "AUTH rejected";
  return v;
}

asio::awaitable<bool> probe_all(const config::Config& config, std::shared_ptr<tls::ClientContext> tls) {
  net::UpstreamLogin login;
  login.ehlo_name = config.hostname;
  login.tls = std::move(tls);
  auto secret = upstream_secret(config.upstream);
  if (!secret) {
    std::printf("credentials: %s\n", secret.error().message.c_str());
  } else {
    login.secret = std::move(*secret);
  }
  std::optional<config::UpstreamPort> chosen;
  for (const auto& p : config.upstream.ports) {
    net::PortAttempt attempt;
    auto conn = co_await net::UpstreamConnection::try_port(config.upstream, p, login, attempt);
    if (conn) co_await conn->quit();   // nothing is sent: EHLO, STARTTLS, AUTH, QUIT
    std::printf("port %u (%s): %s — %s (%lld ms)\n", static_cast<unsigned>(p.port), attempt.tls.c_str(),
                verdict_words(attempt.verdict).c_str(), explain(attempt, config.upstream).c_str(),
                static_cast<long long>(attempt.took.count()));
    std::fflush(stdout);
    if (conn && !chosen) chosen = p;
  }
  if (chosen) {
    std::printf("mailferry will use port %u (%s) at %s\n", static_cast<unsigned>(chosen->port),
                std::string(config::to_string(chosen->tls)).c_str(), config.upstream.host.c_str());
  } else {
    std::printf("no port works: mail stays queued and is retried; fix what the lines above say\n");
  }
  co_return chosen.has_value();
}

}  // namespace

ExitCode probe(const config::Config& config) {
  auto tls = tls::ClientContext::create(config.upstream.ca_file);
  if (!tls) {
    std::fprintf(stderr, "mailferry: %s\n", tls.error().message.c_str());
    return ExitCode::config;
  }
  std::printf("probing %s, ports in configured order; no mail is sent\n", config.upstream.host.c_str());
  asio::io_context io;
  bool any = false;
  asio::co_spawn(io, probe_all(config, std::move(*tls)), [&](std::exception_ptr e, bool ok) {
    if (!e) any = ok;
  });
  io.run();
  return any ? ExitCode::ok : ExitCode::unavailable;
}

}  // namespace mailferry::daemon
