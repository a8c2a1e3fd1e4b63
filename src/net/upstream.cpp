// upstream.cpp: connecting to the provider and driving the client state machine over a Stream.
#include "net/upstream.hpp"

#include <array>
#include <asio/connect.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "mailferry/config/units.hpp"
#include "net/stream.hpp"
#include "tls/tls_engine.hpp"

namespace mailferry::net {

using namespace asio::experimental::awaitable_operators;
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::string tls_name(config::UpstreamTls t) {
  switch (t) {
    case config::UpstreamTls::starttls: return "starttls";
    case config::UpstreamTls::implicit: return "implicit";
    case config::UpstreamTls::none: return "none";
  }
  return "none";
}

std::string describe(const smtp::client_action::Failed& f) {
  // TLS failures carry a reply the session made up so one classifier decides; the detail says it
  // in words, and the made-up reply would only repeat it.
  const bool synthetic = f.cls == smtp::FailureClass::tls_unavailable || f.cls == smtp::FailureClass::tls;
  if (synthetic && !f.detail.empty()) return f.detail;
  if (f.reply && !f.detail.empty()) return f.reply->summary() + " (" + f.detail + ")";
  if (f.reply) return f.reply->summary();
  return f.detail;
}

smtp::ClientPolicy::TlsMode session_tls(config::UpstreamTls t) {
  switch (t) {
    case config::UpstreamTls::starttls: return smtp::ClientPolicy::TlsMode::starttls;
    case config::UpstreamTls::implicit: return smtp::ClientPolicy::TlsMode::implicit;
    case config::UpstreamTls::none: return smtp::ClientPolicy::TlsMode::none;
  }
  return smtp::ClientPolicy::TlsMode::starttls;
}

smtp::ClientPolicy::AuthMethod session_auth(config::UpstreamAuth a) {
  switch (a) {
    case config::UpstreamAuth::auto_: return smtp::ClientPolicy::AuthMethod::auto_;
    case config::UpstreamAuth::plain: return smtp::ClientPolicy::AuthMethod::plain;
    case config::UpstreamAuth::login: return smtp::ClientPolicy::AuthMethod::login;
    case config::UpstreamAuth::xoauth2: return smtp::ClientPolicy::AuthMethod::xoauth2;
  }
  return smtp::ClientPolicy::AuthMethod::auto_;
}

// The probe's words for why a session that connected did not become usable.
std::string verdict_for(std::optional<smtp::FailureClass> cls, bool certificate_failed) {
  if (!cls) return "error";
  switch (*cls) {
    case smtp::FailureClass::connection: return "error";
    case smtp::FailureClass::protocol: return "error";
    case smtp::FailureClass::reply: return "rejected";
    case smtp::FailureClass::tls_unavailable: return "starttls_missing";
    case smtp::FailureClass::tls: return certificate_failed ? "certificate" : "error";
    case smtp::FailureClass::auth_rejected: return "auth_rejected";
  }
  return "error";
}

}  // namespace

UpstreamConnection::UpstreamConnection(std::unique_ptr<Stream> stream, smtp::ClientSession session,
                                       std::uint16_t port, std::string tls_mode,
                                       std::shared_ptr<tls::ClientContext> tls, std::string host)
    : stream_(std::move(stream)), session_(std::move(session)), port_(port), tls_mode_(std::move(tls_mode)),
      tls_(std::move(tls)), host_(std::move(host)) {}

UpstreamConnection::~UpstreamConnection() {
  if (stream_) stream_->close();
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamConnection::open(
    const config::Upstream& upstream, const std::vector<config::UpstreamPort>& order, const UpstreamLogin& login,
    std::vector<PortAttempt>& attempts) {
  for (const auto& p : order) {
    PortAttempt attempt;
    auto conn = co_await try_port(upstream, p, login, attempt);
    attempts.push_back(attempt);
    if (conn) co_return conn;
    // The provider's own refusal is its answer for every port: trying the next one would only
    // repeat it (and an AUTH failure repeated on three ports looks like an attack).
    if (attempt.verdict == "rejected" || attempt.verdict == "auth_rejected") break;
  }
  co_return nullptr;
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamConnection::try_port(
    const config::Upstream& upstream, const config::UpstreamPort& p, const UpstreamLogin& login, PortAttempt& attempt) {
  auto ex = co_await asio::this_coro::executor;
  const auto started = Clock::now();
  attempt = PortAttempt{p.port, tls_name(p.tls), {}, {}, {}, {}, {}, {}, {}};
  auto since_start = [&] { return std::chrono::duration_cast<Duration>(Clock::now() - started); };
  auto finish = [&](std::string verdict, std::string detail) {
    attempt.verdict = std::move(verdict);
    attempt.detail = std::move(detail);
    attempt.took = since_start();
  };
  asio::ip::tcp::resolver resolver(ex);
  const std::string port_text = std::to_string(p.port);
  auto [rec, results] = co_await resolver.async_resolve(upstream.host, port_text, use_tuple);
  if (rec) {
    finish("error", "cannot resolve " + upstream.host + ": " + rec.message());
    co_return nullptr;
  }
  // Every address the name has (IPv6 and IPv4, in the resolver's order), each with its own
  // connect_timeout, as Postfix's smtp_connect_timeout: a blackholed IPv6 route must not use up
  // the time the IPv4 address needed.
  asio::ip::tcp::socket socket(ex);
  bool connected = false;
  bool any_timeout = false;
  bool any_refused = false;
  std::string last_error;
  for (const auto& entry : results) {
    asio::ip::tcp::socket candidate(ex);
    asio::steady_timer timer(ex, Clock::now() + upstream.connect_timeout);
    const auto endpoint = entry.endpoint();
    auto r = co_await (candidate.async_connect(endpoint, use_tuple) || timer.async_wait(use_tuple));
    if (r.index() == 1) {
      any_timeout = true;
      continue;
    }
    auto [cec] = std::get<0>(r);
    if (cec) {
      any_refused = any_refused || cec == asio::error::connection_refused;
      last_error = cec.message();
      continue;
    }
    socket = std::move(candidate);
    connected = true;
    break;
  }
  if (!connected) {
    if (any_timeout) finish("timeout", "no answer within " + config::format_duration(upstream.connect_timeout));
    else if (any_refused) finish("refused", "connection refused");
    else finish("error", last_error.empty() ? "no address for " + upstream.host : last_error);
    co_return nullptr;
  }
  attempt.connected = since_start();
  smtp::ClientPolicy policy;
  policy.ehlo_name = login.ehlo_name;
  policy.tls = session_tls(p.tls);
  // RFC 5321 allows 5 minutes for the greeting; a port that connects and stays silent that long
  // is a tarpit or a blocked port behind a proxy, and the next port should get its chance sooner.
  policy.greeting_timeout = 2 * upstream.connect_timeout;
  if (!login.secret.empty()) {
    policy.username = upstream.username;
    policy.password = login.secret;
    policy.auth = session_auth(upstream.auth);
  }
  auto stream = std::make_unique<Stream>(std::move(socket));
  if (p.tls == config::UpstreamTls::implicit) {
    // Port 465 style: TLS before the greeting; nothing at all is exchanged in clear.
    auto engine = tls::TlsEngine::client(login.tls, upstream.host);
    const auto deadline = Clock::now() + policy.tls_handshake_timeout;
    const bool ok = co_await stream->start_tls(std::move(engine), deadline);
    if (!ok) {
      finish(stream->tls_certificate_failed() ? "certificate" : "error", stream->tls_error());
      co_return nullptr;
    }
    attempt.tls_done = since_start();
  }
  const bool authenticating = !policy.username.empty();
  std::unique_ptr<UpstreamConnection> conn(new UpstreamConnection(
      std::move(stream), smtp::ClientSession(policy), p.port, tls_name(p.tls), login.tls, upstream.host));
  conn->started_ = started;
  conn->timings_ = &attempt;
  conn->session_.handle_connected(Clock::now());
  const Event e = co_await conn->run_until_event();
  conn->timings_ = nullptr;
  if (e == Event::ready) {
    if (authenticating) attempt.auth_done = since_start();
    finish("ok", conn->session_.last_reply() ? conn->session_.last_reply()->summary() : std::string());
    co_return conn;
  }
  // A port that accepts and then says nothing (a tarpit, a transparent proxy of a blocked port)
  // is as blocked as one that drops the SYN.
  const std::string verdict = conn->timed_out_ ? std::string("timeout")
                                               : verdict_for(conn->failure_class_, conn->certificate_failed_);
  finish(verdict, conn->failure_.empty() ? "connection closed" : conn->failure_);
  co_return nullptr;
}

asio::awaitable<std::optional<smtp::MessageResult>> UpstreamConnection::send(smtp::OutgoingMessage message) {
  if (!usable_) co_return std::nullopt;
  done_.reset();
  session_.send_message(std::move(message), Clock::now());
  Event e = co_await run_until_event();
  if (e == Event::message_done) {
    auto result = std::move(done_);
    // The session announces Ready after MessageDone; consume it so the next send starts clean.
    e = co_await run_until_event();
    if (e != Event::ready) usable_ = false;
    co_return result;
  }
  usable_ = false;
  co_return std::nullopt;
}

asio::awaitable<void> UpstreamConnection::quit() {
  if (!usable_) co_return;
  session_.quit(Clock::now());
  co_await run_until_event();
  usable_ = false;
}

asio::awaitable<UpstreamConnection::Event> UpstreamConnection::run_until_event() {
  std::array<char, 16384> buffer{};
  while (true) {
    while (auto action = session_.poll_action()) {
      if (auto* send = std::get_if<smtp::client_action::Send>(&*action)) {
        const auto deadline = session_.poll_deadline().value_or(Clock::now() + std::chrono::minutes(5));
        if (co_await stream_->write_all(send->bytes, deadline)) {
          session_.handle_sent(Clock::now());   // the reply deadline counts from here
        } else {
          session_.handle_eof(Clock::now());
        }
      } else if (auto* done = std::get_if<smtp::client_action::MessageDone>(&*action)) {
        done_ = std::move(done->result);
        co_return Event::message_done;
      } else if (std::holds_alternative<smtp::client_action::Ready>(*action)) {
        co_return Event::ready;
      } else if (std::holds_alternative<smtp::client_action::StartTls>(*action)) {
        // Bytes read before this point were plaintext and have gone to the session only; the
        // handshake starts on a clean socket (the session refuses anything sent after the 220).
        auto engine = tls::TlsEngine::client(tls_, host_);
        const auto deadline = session_.poll_deadline().value_or(Clock::now() + std::chrono::minutes(5));
        const bool ok = co_await stream_->start_tls(std::move(engine), deadline);
        if (ok) {
          if (timings_) timings_->tls_done = std::chrono::duration_cast<Duration>(Clock::now() - started_);
          session_.handle_tls_established(Clock::now());
        } else {
          certificate_failed_ = stream_->tls_certificate_failed();
          session_.handle_tls_failed(stream_->tls_error(), Clock::now());
        }
      } else if (auto* failed = std::get_if<smtp::client_action::Failed>(&*action)) {
        failure_ = describe(*failed);
        failure_class_ = failed->cls;
        usable_ = false;
      } else if (std::holds_alternative<smtp::client_action::Close>(*action)) {
        usable_ = false;
        stream_->close();
        co_return Event::closed;
      }
    }
    const auto r = co_await stream_->read_some(buffer, session_.poll_deadline());
    const auto now = Clock::now();
    if (r.timed_out) {
      timed_out_ = true;
      session_.handle_timeout(now);
    } else if (r.bytes == 0 || r.error) {
      if (failure_.empty() && r.error) failure_ = r.error.message();
      session_.handle_eof(now);
    } else {
      session_.handle_bytes(std::span<const char>(buffer.data(), r.bytes), now);
      if (timings_ && !timings_->banner && session_.state() != smtp::ClientState::greeting) {
        timings_->banner = std::chrono::duration_cast<Duration>(now - started_);
      }
    }
  }
}

}  // namespace mailferry::net
