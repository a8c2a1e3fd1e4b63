// stream.cpp: reads and writes raced against a deadline timer (Asio awaitable operators).
#include "net/stream.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace mailferry::net {

using namespace asio::experimental::awaitable_operators;
namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
}

Stream::Stream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
  std::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) {
    auto addr = ep.address();
    // A v4 client on a dual-stack socket is shown as v4, as users write it in trusted_networks.
    if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
    peer_ = addr.to_string();
  }
  // Replies and message data are written as whole buffers: no Nagle stall on the last segment.
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

asio::awaitable<ReadResult> Stream::read_some(std::span<char> buffer, std::optional<TimePoint> deadline) {
  ReadResult r;
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

asio::awaitable<bool> Stream::write_all(std::string_view bytes, TimePoint deadline) {
  asio::steady_timer timer(socket_.get_executor(), deadline);
  auto result = co_await (asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()), use_tuple) ||
                          timer.async_wait(use_tuple));
  if (result.index() == 1) co_return false;
  auto [ec, n] = std::get<0>(result);
  co_return !ec && n == bytes.size();
}

void Stream::close() {
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace mailferry::net
