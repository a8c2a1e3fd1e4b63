// stream.cpp: reads and writes raced against a deadline timer (Asio awaitable operators), with
// the TLS engine in between once start_tls() has run.
#include "net/stream.hpp"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <sys/socket.h>

#include "tls/tls_engine.hpp"

namespace mailferry::net {

using namespace asio::experimental::awaitable_operators;
namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t raw_buffer_size = 17 * 1024;   // one TLS record and its overhead
}


Stream::Stream(asio::ip::tcp::socket socket) : Stream(Socket(std::move(socket)), std::string()) {}

Stream::Stream(Socket socket, std::string peer) : socket_(std::move(socket)), peer_(std::move(peer)) {
  std::error_code ec;
  if (socket_.local_endpoint(ec).protocol().family() != AF_UNIX) {
    if (peer_.empty()) {
      // The generic socket lost the TCP type; ask the kernel for the peer as a TCP endpoint.
      asio::ip::tcp::endpoint ep;
      socklen_t len = static_cast<socklen_t>(ep.capacity());
      if (::getpeername(socket_.native_handle(), ep.data(), &len) == 0) {
        ep.resize(len);
        auto addr = ep.address();
        if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
        peer_ = addr.to_string();
      }
    }
    // Replies and message data are written as whole buffers: no Nagle stall on the last segment.
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  }
}

Stream::~Stream() = default;

asio::awaitable<ReadResult> Stream::read_raw(std::span<char> buffer, std::optional<TimePoint> deadline) {
  ReadResult r;
  if (!pending_.empty()) {
    r.bytes = std::min(buffer.size(), pending_.size());
    std::copy_n(pending_.data(), r.bytes, buffer.data());
    pending_.erase(0, r.bytes);
    co_return r;
  }
  if (!deadline) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()), use_tuple);
    r.bytes = n;
    if (ec && ec != asio::error::eof) r.error = ec;
    co_return r;
  }
  asio::steady_timer timer(socket_.get_executor(), *deadline);
  auto result = co_await (socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()), use_tuple) ||
                          timer.async_wait(use_tuple));
  if (result.index() == 1) {
    r.timed_out = true;
    co_return r;
  }
  auto [ec, n] = std::get<0>(result);
  r.bytes = n;
  if (ec && ec != asio::error::eof) r.error = ec;
  co_return r;
}

asio::awaitable<bool> Stream::write_raw(std::string_view bytes, TimePoint deadline) {
  if (bytes.empty()) co_return true;
  asio::steady_timer timer(socket_.get_executor(), deadline);
  auto result = co_await (asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()), use_tuple) ||
                          timer.async_wait(use_tuple));
  if (result.index() == 1) co_return false;
  auto [ec, n] = std::get<0>(result);
  co_return !ec && n == bytes.size();
}

asio::awaitable<bool> Stream::flush_tls(TimePoint deadline) {
  const std::string out = tls_->take_ciphertext();
  co_return co_await write_raw(out, deadline);
}

asio::awaitable<ReadResult> Stream::read_some(std::span<char> buffer, std::optional<TimePoint> deadline) {
  if (!tls_) co_return co_await read_raw(buffer, deadline);
  while (true) {
    auto n = tls_->read_plaintext(buffer);
    if (!n) {
      ReadResult r;
      r.tls_error = n.error().message;
      tls_error_ = r.tls_error;
      co_return r;
    }
    if (*n > 0) co_return ReadResult{*n, false, {}, {}};
    if (tls_->status() == tls::TlsEngine::Status::closed) co_return ReadResult{};   // close_notify: EOF
    // Whatever the engine wants to say (alerts) goes out before we wait for more.
    if (!co_await flush_tls(deadline.value_or(Clock::now() + std::chrono::minutes(5)))) co_return ReadResult{};
    auto raw = co_await read_raw(std::span<char>(raw_.get(), raw_buffer_size), deadline);
    if (raw.bytes == 0) co_return raw;   // EOF, error or timeout, as for plain TCP
    tls_->feed_ciphertext(std::span<const char>(raw_.get(), raw.bytes));
  }
}

asio::awaitable<bool> Stream::write_all(std::string_view bytes, TimePoint deadline) {
  if (!tls_) co_return co_await write_raw(bytes, deadline);
  if (auto w = tls_->write_plaintext(bytes); !w) {
    tls_error_ = w.error().message;
    co_return false;
  }
  co_return co_await flush_tls(deadline);
}

asio::awaitable<bool> Stream::start_tls(std::unique_ptr<tls::TlsEngine> engine, TimePoint deadline) {
  tls_ = std::move(engine);
  raw_ = std::make_unique<char[]>(raw_buffer_size);
  while (true) {
    const auto status = tls_->advance();
    if (!co_await flush_tls(deadline)) {
      if (tls_error_.empty()) tls_error_ = "connection lost during the TLS handshake";
      co_return false;
    }
    switch (status) {
      case tls::TlsEngine::Status::established:
        co_return true;
      case tls::TlsEngine::Status::failed:
      case tls::TlsEngine::Status::closed:
        tls_error_ = tls_->error();
        tls_certificate_failed_ = tls_->verification_failed();
        co_return false;
      case tls::TlsEngine::Status::handshaking:
        break;
    }
    auto raw = co_await read_raw(std::span<char>(raw_.get(), raw_buffer_size), deadline);
    if (raw.timed_out) {
      tls_error_ = "TLS handshake timed out";
      co_return false;
    }
    if (raw.bytes == 0) {
      tls_error_ = "connection closed during the TLS handshake";
      co_return false;
    }
    tls_->feed_ciphertext(std::span<const char>(raw_.get(), raw.bytes));
  }
}

std::string Stream::tls_version() const { return tls_ ? tls_->version() : std::string(); }
std::string Stream::tls_cipher() const { return tls_ ? tls_->cipher() : std::string(); }

void Stream::close() {
  std::error_code ec;
  if (tls_ && tls_->status() == tls::TlsEngine::Status::established) {
    // close_notify, best effort: a peer that wants it gets it; nothing waits for it.
    tls_->close();
    const std::string out = tls_->take_ciphertext();
    asio::write(socket_, asio::buffer(out), ec);
  }
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace mailferry::net
