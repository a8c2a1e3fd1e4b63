// stream.hpp: Stream, one TCP connection with per-operation deadlines.
// The TLS engine will sit inside it (start_tls); the protocol state machines never see it.
// Internal to src/net and src/daemon: the only headers besides .cpp files that include Asio.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "mailferry/base/time.hpp"

namespace mailferry::net {

struct ReadResult {
  std::size_t bytes = 0;    // 0 with no error and no timeout = EOF
  bool timed_out = false;
  std::error_code error;
};

class Stream {
 public:
  explicit Stream(asio::ip::tcp::socket socket);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Waits for bytes until `deadline` (the state machine's poll_deadline(), or none).
  asio::awaitable<ReadResult> read_some(std::span<char> buffer, std::optional<TimePoint> deadline);
  // Writes everything or fails; false on error or when `deadline` passes first.
  asio::awaitable<bool> write_all(std::string_view bytes, TimePoint deadline);
  void close();

  const std::string& peer_address() const { return peer_; }
  asio::ip::tcp::socket& socket() { return socket_; }

 private:
  asio::ip::tcp::socket socket_;
  std::string peer_;
};

}  // namespace mailferry::net
