// metrics_endpoint.hpp: the [metrics] HTTP endpoint — GET /metrics, /healthz, /readyz.
// Runs on the daemon's event loop beside SMTP, with every resource bounded (connections, request
// size, time), so a scraper or an attacker on this port can neither slow nor stop mail.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "mailferry/metrics/metrics.hpp"

namespace mailferry::daemon {

struct MetricsSource {
  std::function<metrics::Snapshot()> snapshot;
  // Why the daemon should not get traffic ("draining", "spool not writable: ..."); nullopt = ready.
  std::function<std::optional<std::string>()> not_ready;
};

class MetricsEndpoint : public std::enable_shared_from_this<MetricsEndpoint> {
 public:
  // `acceptor` is bound and listening already (so a reload can refuse a port that is taken
  // before anything changes).
  MetricsEndpoint(asio::ip::tcp::acceptor acceptor, std::string address, MetricsSource source);
  void start();
  // Stops accepting; requests under way finish (each within its bound).
  void close();
  const std::string& address() const { return address_; }

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);
  std::string answer(const std::string& method, std::string_view path);

  asio::ip::tcp::acceptor acceptor_;
  std::string address_;
  MetricsSource source_;
  std::size_t open_ = 0;
};

// This process's CPU time, memory, descriptors and start time, from /proc.
metrics::ProcessStats read_process_stats();

}  // namespace mailferry::daemon
