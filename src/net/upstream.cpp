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

#include "net/stream.hpp"

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
  if (f.reply) return f.reply->summary();
  return f.detail;
}

}  // namespace

UpstreamConnection::UpstreamConnection(std::unique_ptr<Stream> stream, smtp::ClientSession session,
                                       std::uint16_t port)
    : stream_(std::move(stream)), session_(std::move(session)), port_(port) {}

UpstreamConnection::~UpstreamConnection() {
  if (stream_) stream_->close();
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamConnection::open(
    const config::Upstream& upstream, const std::string& ehlo_name, std::vector<PortAttempt>& attempts) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(ex);
  for (const auto& p : upstream.ports) {
    const auto started = Clock::now();
    PortAttempt attempt{p.port, tls_name(p.tls), {}, {}};
    auto finish = [&](std::string verdict) {
      attempt.verdict = std::move(verdict);
      attempt.took = std::chrono::duration_cast<Duration>(Clock::now() - started);
      attempts.push_back(attempt);
    };
    if (p.tls != config::UpstreamTls::none) {
      // No credentials and no mail ever cross a connection without TLS: until the TLS engine
      // exists, such a port cannot be used at all.
      finish("tls unavailable");
      continue;
    }
    auto [rec, results] = co_await resolver.async_resolve(upstream.host, std::to_string(p.port), use_tuple);
    if (rec) {
      finish("resolve failed: " + rec.message());
      continue;
    }
    asio::ip::tcp::socket socket(ex);
    asio::steady_timer timer(ex, Clock::now() + upstream.connect_timeout);
    auto r = co_await (asio::async_connect(socket, results, use_tuple) || timer.async_wait(use_tuple));
    if (r.index() == 1) {
      finish("timeout");
      continue;
    }
    auto [cec, endpoint] = std::get<0>(r);
    (void)endpoint;
    if (cec) {
      finish(cec == asio::error::connection_refused ? "refused" : cec.message());
      continue;
    }
    smtp::ClientPolicy policy;
    policy.ehlo_name = ehlo_name;
    std::unique_ptr<UpstreamConnection> conn(
        new UpstreamConnection(std::make_unique<Stream>(std::move(socket)), smtp::ClientSession(policy), p.port));
    conn->session_.handle_connected(Clock::now());
    const Event e = co_await conn->run_until_event();
    if (e == Event::ready) {
      finish("ok");
      co_return conn;
    }
    finish(conn->failure_.empty() ? "closed" : conn->failure_);
  }
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
      } else if (auto* failed = std::get_if<smtp::client_action::Failed>(&*action)) {
        failure_ = describe(*failed);
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
      session_.handle_timeout(now);
    } else if (r.bytes == 0 || r.error) {
      if (failure_.empty() && r.error) failure_ = r.error.message();
      session_.handle_eof(now);
    } else {
      session_.handle_bytes(std::span<const char>(buffer.data(), r.bytes), now);
    }
  }
}

}  // namespace mailferry::net
