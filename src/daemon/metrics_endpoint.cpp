// metrics_endpoint.cpp: a deliberately small HTTP/1.1 server: one request per connection, GET and
// HEAD only, answered from memory.
#include "daemon/metrics_endpoint.hpp"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "mailferry/base/log.hpp"
#include "mailferry/http/request_head.hpp"
#include "net/stream.hpp"

namespace mailferry::daemon {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
// A scraper sends its request at once; anything slower is closed (slowloris). The same bound
// covers writing the response to a reader that does not read.
constexpr auto request_timeout = std::chrono::seconds(10);
// Prometheus and a load balancer's probes need a handful; beyond this, new connections are closed
// unanswered.
constexpr std::size_t max_connections = 32;
// After answering a bad request: how long, and how much, of the rest is read and dropped.
constexpr auto linger_time = std::chrono::seconds(1);
constexpr std::size_t max_linger_bytes = 256 * 1024;
constexpr std::string_view text_plain = "text/plain; charset=utf-8";
constexpr std::string_view exposition = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

MetricsEndpoint::MetricsEndpoint(asio::ip::tcp::acceptor acceptor, std::string address, MetricsSource source)
    : acceptor_(std::move(acceptor)), address_(std::move(address)), source_(std::move(source)) {}

void MetricsEndpoint::start() {
  log::event("metrics_listening", {}, {{"address", address_}});
  asio::co_spawn(acceptor_.get_executor(), [self = shared_from_this()] { return self->accept_loop(); },
                 [](std::exception_ptr e) {
                   if (e) log::error("crash", {{"where", "metrics accept"}});
                 });
}

void MetricsEndpoint::close() {
  std::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> MetricsEndpoint::accept_loop() {
  auto self = shared_from_this();   // alive while the loop runs, even after a reload replaced it
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      log::warning("accept_error", {{"listener", address_}, {"error", ec.message()}});
      // Out of descriptors (EMFILE) would otherwise spin: give the process a moment.
      asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    if (open_ >= max_connections) continue;   // the socket closes as it goes out of scope
    ++open_;
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), [self](std::exception_ptr e) {
      --self->open_;
      if (e) log::error("crash", {{"where", "metrics"}});
    });
  }
}

asio::awaitable<void> MetricsEndpoint::serve(asio::ip::tcp::socket socket) {
  net::Stream stream(std::move(socket));
  const auto deadline = Clock::now() + request_timeout;
  http::RequestHeadParser parser;
  std::array<char, 2048> buffer{};
  while (parser.status() == http::RequestHeadParser::Status::need_more) {
    const auto r = co_await stream.read_some(buffer, deadline);
    if (r.timed_out || r.error || r.bytes == 0) {
      stream.close();
      co_return;
    }
    parser.feed(std::string_view(buffer.data(), r.bytes));
  }
  std::string reply;
  if (parser.status() == http::RequestHeadParser::Status::invalid) {
    reply = http::response(parser.error_status(), text_plain, "bad request\n");
  } else {
    reply = answer(parser.method(), parser.path());
  }
  if (co_await stream.write_all(reply, deadline) && parser.status() == http::RequestHeadParser::Status::invalid) {
    // The client may still be sending what made the request invalid: closing with unread bytes
    // would reset the connection and could destroy the answer before it is read. Stop sending,
    // then discard what arrives for a moment (a bounded lingering close).
    ::shutdown(stream.socket().native_handle(), SHUT_WR);
    const auto linger_until = std::min(deadline, Clock::now() + linger_time);
    std::size_t discarded = 0;
    while (discarded < max_linger_bytes) {
      const auto r = co_await stream.read_some(buffer, linger_until);
      if (r.timed_out || r.error || r.bytes == 0) break;
      discarded += r.bytes;
    }
  }
  stream.close();
}

std::string MetricsEndpoint::answer(const std::string& method, std::string_view path) {
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return http::response(405, text_plain, "only GET and HEAD\n", false, "Allow: GET, HEAD\r\n");
  }
  if (path == "/metrics") return http::response(200, exposition, metrics::render(source_.snapshot()), head);
  if (path == "/healthz") return http::response(200, text_plain, "ok\n", head);
  if (path == "/readyz") {
    if (auto why = source_.not_ready()) return http::response(503, text_plain, "not ready: " + *why + "\n", head);
    return http::response(200, text_plain, "ready\n", head);
  }
  return http::response(404, text_plain, "not found: try /metrics, /healthz or /readyz\n", head);
}

namespace {
std::string slurp(const char* path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}
}  // namespace

metrics::ProcessStats read_process_stats() {
  metrics::ProcessStats p;
  metrics::parse_proc_stat(slurp("/proc/self/stat"), slurp("/proc/stat"), ::sysconf(_SC_CLK_TCK),
                           ::sysconf(_SC_PAGESIZE), p);
  if (DIR* d = ::opendir("/proc/self/fd")) {
    std::uint64_t n = 0;
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    p.open_fds = n > 0 ? n - 1 : 0;   // not counting the directory's own descriptor
  }
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) p.max_fds = lim.rlim_cur;
  return p;
}

}  // namespace mailferry::daemon
