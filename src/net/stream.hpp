// stream.hpp: Stream, one TCP connection with per-operation deadlines, and TLS once start_tls()
// has run (a TlsEngine turns plaintext into ciphertext in memory; Stream moves the ciphertext).
// The protocol state machines never see it.
// Internal to src/net and src/daemon: the only headers besides .cpp files that include Asio.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "mailferry/base/time.hpp"

namespace mailferry::tls {
class TlsEngine;
}

namespace mailferry::net {

struct ReadResult {
  std::size_t bytes = 0;    // 0 with no error and no timeout = EOF
  bool timed_out = false;
  std::error_code error;
  std::string tls_error;    // a TLS record or alert failure (then bytes == 0)
};

class Stream {
 public:
  using Socket = asio::generic::stream_protocol::socket;   // TCP, or the local sendmail socket
  explicit Stream(asio::ip::tcp::socket socket);            // peer address taken from the socket
  Stream(Socket socket, std::string peer);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Waits for bytes until `deadline` (the state machine's poll_deadline(), or none).
  asio::awaitable<ReadResult> read_some(std::span<char> buffer, std::optional<TimePoint> deadline);
  // Writes everything or fails; false on error or when `deadline` passes first.
  asio::awaitable<bool> write_all(std::string_view bytes, TimePoint deadline);
  // Runs the handshake (either side, as the engine was made); from then on reads and writes are
  // TLS. false when it fails or `deadline` passes; tls_error() says why.
  asio::awaitable<bool> start_tls(std::unique_ptr<tls::TlsEngine> engine, TimePoint deadline);
  void close();
  // Bytes read past a preamble (the PROXY protocol header): the next reads, plain or the TLS
  // handshake's, return them before anything from the socket.
  void unread(std::string bytes) { pending_ = std::move(bytes); }
  // The client's address as a proxy reported it, for logs and Received:.
  void set_peer_address(std::string peer) { peer_ = std::move(peer); }

  bool secure() const { return tls_ != nullptr; }
  const std::string& tls_error() const { return tls_error_; }
  // The handshake failed because the peer's certificate did not verify (chain or host name).
  bool tls_certificate_failed() const { return tls_certificate_failed_; }
  std::string tls_version() const;
  std::string tls_cipher() const;
  const std::string& peer_address() const { return peer_; }
  Socket& socket() { return socket_; }

 private:
  asio::awaitable<ReadResult> read_raw(std::span<char> buffer, std::optional<TimePoint> deadline);
  asio::awaitable<bool> write_raw(std::string_view bytes, TimePoint deadline);
  asio::awaitable<bool> flush_tls(TimePoint deadline);

  Socket socket_;
  std::string peer_;
  std::string pending_;   // see unread()
  std::unique_ptr<tls::TlsEngine> tls_;
  std::string tls_error_;
  bool tls_certificate_failed_ = false;
  std::unique_ptr<char[]> raw_;   // ciphertext read buffer, allocated with TLS
};

}  // namespace mailferry::net
