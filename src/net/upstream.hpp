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

#include "mailferry/config/config.hpp"
#include "mailferry/smtp/client_session.hpp"

namespace mailferry::net {

class Stream;

// One port tried while opening: what happened and how long it took.
struct PortAttempt {
  std::uint16_t port = 0;
  std::string tls;        // "none", "starttls", "implicit"
  std::string verdict;    // "ok", "timeout", "refused", "tls unavailable", or the server's refusal
  Duration took{};
};

class UpstreamConnection {
 public:
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Tries each configured port in order until one greets and accepts EHLO. nullptr when none does;
  // `attempts` says why for each port.
  static asio::awaitable<std::unique_ptr<UpstreamConnection>> open(const config::Upstream& upstream,
                                                                   const std::string& ehlo_name,
                                                                   std::vector<PortAttempt>& attempts);

  // Hands over one message. nullopt when the connection failed before the final reply
  // (failure() says why); the connection is then unusable.
  asio::awaitable<std::optional<smtp::MessageResult>> send(smtp::OutgoingMessage message);
  asio::awaitable<void> quit();

  bool usable() const { return usable_; }
  std::uint16_t port() const { return port_; }
  const std::string& failure() const { return failure_; }

 private:
  enum class Event { ready, message_done, closed };
  UpstreamConnection(std::unique_ptr<Stream> stream, smtp::ClientSession session, std::uint16_t port);
  asio::awaitable<Event> run_until_event();

  std::unique_ptr<Stream> stream_;
  smtp::ClientSession session_;
  std::uint16_t port_;
  bool usable_ = true;
  std::string failure_;
  std::optional<smtp::MessageResult> done_;
};

}  // namespace mailferry::net
