// upstream.hpp: UpstreamConnection, one SMTP client connection to the configured provider,
// found by trying the configured ports in order, driving a pure smtp::ClientSession.
// Decides nothing about the spool: it reports what the server said.
#pragma once

#include <asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mailferry/base/secret.hpp"
#include "mailferry/config/config.hpp"
#include "mailferry/smtp/client_session.hpp"

namespace mailferry::tls {
class ClientContext;
}

namespace mailferry::net {

class Stream;

// What open() needs besides [upstream]: who we are and the secret, already read.
struct UpstreamLogin {
  std::string ehlo_name;
  Secret secret;                                   // password or XOAUTH2 access token; empty = no AUTH
  std::shared_ptr<tls::ClientContext> tls;         // trust store (or ca_file) for verification
};

// One port tried while opening: what happened and how long it took.
struct PortAttempt {
  std::uint16_t port = 0;
  std::string tls;        // "none", "starttls", "implicit"
  // The `probe` verdicts: "ok", "timeout", "refused", "starttls_missing", "certificate",
  // "auth_rejected", "rejected"; "error" for other connection failures.
  std::string verdict;
  std::string detail;     // one line: the reply, or what failed
  Duration took{};
  // How long each step took from the start of the attempt, where it was reached.
  std::optional<Duration> connected, banner, tls_done, auth_done;
};

class UpstreamConnection {
 public:
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Tries each configured port in order until one greets, accepts EHLO, and — as configured —
  // STARTTLS (required: a port without it counts as blocked) and AUTH. A connection or TLS failure
  // moves to the next port; an SMTP refusal (AUTH rejected, 5xx greeting) is the provider's answer
  // and ends the search. nullptr when no port worked; `attempts` says why for each one tried.
  static asio::awaitable<std::unique_ptr<UpstreamConnection>> open(const config::Upstream& upstream,
                                                                   const std::vector<config::UpstreamPort>& order,
                                                                   const UpstreamLogin& login,
                                                                   std::vector<PortAttempt>& attempts);
  // One port: connect, greeting, EHLO, TLS, AUTH. nullptr when it did not get that far.
  static asio::awaitable<std::unique_ptr<UpstreamConnection>> try_port(const config::Upstream& upstream,
                                                                       const config::UpstreamPort& port,
                                                                       const UpstreamLogin& login,
                                                                       PortAttempt& attempt);

  // Hands over one message. nullopt when the connection failed before the final reply
  // (failure() says why); the connection is then unusable.
  asio::awaitable<std::optional<smtp::MessageResult>> send(smtp::OutgoingMessage message);
  asio::awaitable<void> quit();

  bool usable() const { return usable_; }
  std::uint16_t port() const { return port_; }
  const std::string& tls_mode() const { return tls_mode_; }
  const std::string& failure() const { return failure_; }

 private:
  enum class Event { ready, message_done, closed };
  UpstreamConnection(std::unique_ptr<Stream> stream, smtp::ClientSession session, std::uint16_t port,
                     std::string tls_mode, std::shared_ptr<tls::ClientContext> tls, std::string host);
  asio::awaitable<Event> run_until_event();

  std::unique_ptr<Stream> stream_;
  smtp::ClientSession session_;
  std::uint16_t port_;
  bool usable_ = true;
  std::string failure_;
  std::optional<smtp::FailureClass> failure_class_;
  bool certificate_failed_ = false;
  bool timed_out_ = false;   // the session ended on a deadline (tarpit, stalled server)
  std::optional<smtp::MessageResult> done_;
  std::string tls_mode_;
  std::shared_ptr<tls::ClientContext> tls_;
  std::string host_;
  TimePoint started_{};
  PortAttempt* timings_ = nullptr;   // filled while open() drives the session to Ready
};

}  // namespace mailferry::net
