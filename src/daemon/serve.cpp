// serve.cpp: the daemon — io_context, listeners, one coroutine per connection, the scheduler,
// and the signals. One loop thread runs all protocol work; blocking fsyncs go to a small pool.
#include "daemon/serve.hpp"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <list>
#include <map>
#include <memory>

#include "daemon/credentials.hpp"
#include "daemon/metrics_endpoint.hpp"
#include "daemon/notify.hpp"
#include "daemon/privileges.hpp"
#include "daemon/scheduler.hpp"
#include "mailferry/auth/auth_throttle.hpp"
#include "mailferry/auth/password.hpp"
#include "mailferry/base/log.hpp"
#include "mailferry/config/load_config.hpp"
#include "mailferry/message/trace_headers.hpp"
#include "mailferry/smtp/proxy_header.hpp"
#include "mailferry/smtp/server_session.hpp"
#include "mailferry/spool/spool.hpp"
#include "net/stream.hpp"
#include "tls/tls_engine.hpp"

namespace mailferry::daemon {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
// How long sessions in flight may take to finish after SIGTERM before the process exits anyway.
constexpr auto drain_bound = std::chrono::seconds(10);
// Sessions one client address may hold at once (as Postfix's smtpd_client_connection_count_limit),
// and in all: beyond them, "421 4.7.0" and close. Clients in trusted_networks are exempt from the
// per-address limit (as Postfix exempts $mynetworks): a busy web server on localhost opens many.
constexpr int max_connections_per_address = 50;
constexpr std::size_t max_connections = 1000;
// A TLS handshake (STARTTLS or implicit) must finish within this, or the connection is dropped.
constexpr auto handshake_timeout = std::chrono::seconds(30);
// accept() failing with the connection still queued (out of descriptors: EMFILE, ENFILE; out of
// kernel memory) fails again at once: pause before the next try, and log once per interval.
constexpr auto accept_retry_pause = std::chrono::milliseconds(100);
constexpr auto accept_error_log_interval = std::chrono::seconds(10);

std::string iso_now() { return format_utc(std::chrono::system_clock::now(), true); }

void install_log_sink(config::LogFormat format) {
  const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  log::set_sink([format, journal](const log::Record& r) {
    std::string line;
    switch (format) {
      case config::LogFormat::json:
        line = log::format_json(r, iso_now());
        break;
      case config::LogFormat::text:
        if (journal) {
          // The journal stamps lines itself; the priority prefix sets their level (sd-daemon(3)).
          line = r.level == log::Level::error ? "<3>" : r.level == log::Level::warning ? "<4>" : "<6>";
        } else {
          line = iso_now() + " ";
        }
        line += log::format_text(r);
        break;
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  });
}

// An IPv4 client of a dual-stack listener ([::]:587), or in a PROXY v2 TCP6 header, arrives as
// ::ffff:a.b.c.d: it is that IPv4 address, for the per-address limit, logs and Received: alike.
asio::ip::address unmapped(const asio::ip::address& addr) {
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  return addr;
}

bool in_networks(const std::vector<config::Network>& networks, const asio::ip::address& addr) {
  for (const auto& n : networks) {
    if (addr.is_v4()) {
      const auto b = addr.to_v4().to_bytes();
      if (n.contains(b.data(), false)) return true;
    } else {
      const auto b = addr.to_v6().to_bytes();
      if (n.contains(b.data(), true)) return true;
    }
  }
  return false;
}

// Over a connection limit: one 421 line (RFC 5321 §3.1), bounded in time, then close.
asio::awaitable<void> refuse_connection(std::unique_ptr<net::Stream> stream, std::string hostname) {
  const std::string reply = "421 4.7.0 " + hostname + " Too many connections, try again later\r\n";
  co_await stream->write_all(reply, Clock::now() + std::chrono::seconds(5));
  stream->close();
}

// A PROXY protocol header (v1 or v2) must arrive within this after the connection.
constexpr auto proxy_header_timeout = std::chrono::seconds(10);

// The name of the local user at the other end of a local socket, for logs and Received:.
std::string local_peer(net::Stream::Socket& socket) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "local";
  char buf[1024];
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(cred.uid, &pw, buf, sizeof buf, &found) == 0 && found) return std::string("local:") + pw.pw_name;
  return "local:uid" + std::to_string(cred.uid);
}

struct Connection {
  smtp::ServerSession* session;
  net::Stream* stream;
  std::string listener;   // its address, or "sendmail"
};

using ConfigPtr = std::shared_ptr<const config::Config>;

// One TCP listener. `listen` may change on reload (tls, auth) while the socket stays open; a
// listener the new config no longer has is retired: closed, and forgotten when its loop ends.
struct Listener {
  asio::ip::tcp::acceptor acceptor;
  config::Listen listen;
  bool retired = false;
};

bool any_tls_listener(const config::Config& cfg) {
  return std::any_of(cfg.listen.begin(), cfg.listen.end(),
                     [](const auto& l) { return l.tls != config::ListenTls::none; });
}

// Same socket address: a reload keeps such a listener open (and its queue of pending connections).
bool same_endpoint(const config::Listen& a, const config::Listen& b) {
  std::error_code ea, eb;
  const auto x = asio::ip::make_address(a.host, ea);
  const auto y = asio::ip::make_address(b.host, eb);
  return !ea && !eb && x == y && a.port == b.port;
}

// Binds and listens; the error is the one line a user sees.
Result<void> open_listener(asio::ip::tcp::acceptor& acc, const config::Listen& l) {
  std::error_code ec;
  const auto addr = asio::ip::make_address(l.host, ec);
  if (ec) return Error{"listener " + l.address + ": bad address"};
  const asio::ip::tcp::endpoint ep(addr, l.port);
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    const char* hint = ec == std::errc::permission_denied
                           ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE; in a container: --sysctl "
                             "net.ipv4.ip_unprivileged_port_start=0)"
                           : " (is another server using the port?)";
    return Error{"cannot listen on " + l.address + ": " + ec.message() + hint};
  }
  return {};
}

// What a config needs besides itself: the TLS contexts, made before anything switches to it.
struct Prepared {
  std::shared_ptr<tls::ServerContext> server_tls;   // null without TLS listeners
  std::shared_ptr<tls::ClientContext> upstream_tls;
};

Result<Prepared> prepare(const config::Config& cfg) {
  Prepared p;
  if (any_tls_listener(cfg)) {
    // load_config already insists on [tls] for TLS listeners.
    auto ctx = tls::ServerContext::load(cfg.tls->cert_file, cfg.tls->key_file);
    if (!ctx) return ctx.error();
    p.server_tls = std::move(*ctx);
  }
  // The upstream's trust store (or ca_file) is read once per config.
  auto upstream_tls = tls::ClientContext::create(cfg.upstream.ca_file);
  if (!upstream_tls) return upstream_tls.error();
  p.upstream_tls = std::move(*upstream_tls);
  return p;
}

class Daemon {
 public:
  Daemon(ConfigPtr cfg, std::string config_flag, config::Environment env, spool::Spool spool, Prepared prepared,
         std::optional<RunAs> run_as)
      : run_as_(std::move(run_as)), cfg_(std::move(cfg)), config_flag_(std::move(config_flag)), env_(std::move(env)), spool_(std::move(spool)),
        scheduler_(io_.get_executor(), disk_.get_executor(), spool_, cfg_, std::move(prepared.upstream_tls),
                   counters_),
        signals_(io_), server_tls_(std::move(prepared.server_tls)) {}

  ExitCode run();

 private:
  asio::awaitable<void> accept_loop(std::list<Listener>::iterator listener);
  asio::awaitable<void> accept_local(asio::local::stream_protocol::acceptor& acceptor);
  // After a failed accept(): log (at most once per accept_error_log_interval), then pause.
  asio::awaitable<void> accept_failed(std::string listener, std::error_code ec);
  asio::awaitable<void> serve_connection(std::unique_ptr<net::Stream> stream_ptr, bool peer_trusted,
                                         config::Listen listen, ConfigPtr cfg);
  // A TCP connection whose client is known (its own address, or the one a PROXY header gave):
  // the connection limits, then a session.
  void admit(std::unique_ptr<net::Stream> stream, const asio::ip::address& client, const config::Listen& listen,
             const ConfigPtr& cfg);
  // A listener with proxy_protocol = true: the header first, only from proxy_from.
  asio::awaitable<void> read_proxy_header(std::unique_ptr<net::Stream> stream, asio::ip::address from,
                                          config::Listen listen, ConfigPtr cfg);
  asio::awaitable<smtp::AuthResult> authenticate(const smtp::server_action::Authenticate& auth,
                                                 const std::string& client, const config::Listen& listen);
  void start_accepting(std::list<Listener>::iterator listener);
  void on_signal(int signo);
  void reload();
  void maybe_exit();
  // [metrics]: what /metrics shows now, and why /readyz would say 503.
  metrics::Snapshot metrics_snapshot() const;
  std::optional<std::string> not_ready() const;
  // Binds [metrics] address (nullptr when off); the error is the one line a user sees.
  Result<std::shared_ptr<MetricsEndpoint>> open_metrics(const config::Config& cfg);

  std::optional<RunAs> run_as_;   // started as root with run_as: whom to become once bound
  ConfigPtr cfg_;                 // the config in force; a session keeps the one it started with
  std::string config_flag_;       // -c as given: SIGHUP loads from the same sources
  config::Environment env_;       // the MAILFERRY_* variables at start (a process's cannot change)
  asio::io_context io_{1};
  asio::thread_pool disk_{8};   // commits (fsync) run here, off the loop thread: enough for their syncs to group
  spool::Spool spool_;
  metrics::Counters counters_;   // loop thread only
  Scheduler scheduler_;
  asio::signal_set signals_;
  std::list<Listener> listeners_;
  asio::local::stream_protocol::acceptor local_acceptor_{io_};
  std::list<Connection> connections_;
  std::map<std::string, int> per_address_;
  std::shared_ptr<tls::ServerContext> server_tls_;   // loaded per config: the key stays parsed between handshakes
  std::shared_ptr<MetricsEndpoint> metrics_;        // null when [metrics] is off
  auth::AuthThrottle throttle_;
  std::string dummy_hash_;   // checked for unknown users too, so timing does not reveal who exists
  bool stopping_ = false;
  const Clock::time_point started_ = Clock::now();
  std::optional<Clock::time_point> last_accept_error_log_;
};

void log_listening(const config::Listen& l) {
  log::event("listening", {}, {{"address", l.address}, {"tls", std::string(config::to_string(l.tls))},
                               {"auth", l.auth == config::ListenAuth::none ? "none" : "required"}});
}

void Daemon::start_accepting(std::list<Listener>::iterator listener) {
  log_listening(listener->listen);
  asio::co_spawn(io_, accept_loop(listener), [](std::exception_ptr e) {
    if (e) log::error("crash", {{"where", "accept"}});
  });
}

ExitCode Daemon::run() {
  // Signals first: a SIGTERM that arrives as soon as a port accepts (a supervisor, a test) must
  // find the handler installed, not the default action. Asio keeps it until the loop runs.
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  std::function<void(std::error_code, int)> handler = [&](std::error_code ec, int signo) {
    if (ec) return;
    on_signal(signo);
    signals_.async_wait(handler);
  };
  signals_.async_wait(handler);
  for (const auto& w : secret_file_warnings(*cfg_)) log::warning("insecure_file", {{"problem", w}});
  if (auto h = auth::hash_password("not a password")) dummy_hash_ = *h;
  for (const auto& l : cfg_->listen) {
    auto it = listeners_.insert(listeners_.end(), Listener{asio::ip::tcp::acceptor(io_), l});
    if (auto opened = open_listener(it->acceptor, l); !opened) {
      std::fprintf(stderr, "mailferry: %s\n", opened.error().message.c_str());
      return ExitCode::unavailable;
    }
  }
  {
    auto endpoint = open_metrics(*cfg_);
    if (!endpoint) {
      std::fprintf(stderr, "mailferry: %s\n", endpoint.error().message.c_str());
      return ExitCode::unavailable;
    }
    metrics_ = std::move(*endpoint);
  }
  // Everything privileged is done (ports bound, spool open and locked, certificates read): from
  // here on, nothing runs as root.
  if (run_as_) {
    auto given = hand_over_spool(cfg_->spool_dir, *run_as_);
    auto dropped = given ? drop_privileges(*run_as_) : Result<void>(given.error());
    if (!dropped) {
      std::fprintf(stderr, "mailferry: run_as: %s\n", dropped.error().message.c_str());
      return ExitCode::software;
    }
    log::event("privileges_dropped", {}, {{"user", run_as_->name}, {"uid", std::to_string(run_as_->uid)},
                                          {"gid", std::to_string(run_as_->gid)}});
  }
  for (auto it = listeners_.begin(); it != listeners_.end(); ++it) start_accepting(it);
  if (metrics_) metrics_->start();
  // The local socket where `mailferry sendmail` hands messages over (any local user may connect:
  // an abstract socket has no file permissions, and lives in this network namespace only).
  {
    std::error_code ec;
    local_acceptor_.open(asio::local::stream_protocol(), ec);
    if (!ec) local_acceptor_.bind(asio::local::stream_protocol::endpoint(local_socket_name(*cfg_)), ec);
    if (!ec) local_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::fprintf(stderr, "mailferry: cannot open the local sendmail socket for %s: %s (is another mailferry "
                   "running with this spool?)\n", cfg_->spool_dir.c_str(), ec.message().c_str());
      return ExitCode::unavailable;
    }
    asio::co_spawn(io_, accept_local(local_acceptor_), [](std::exception_ptr e) {
      if (e) log::error("crash", {{"where", "accept_local"}});
    });
  }
  scheduler_.on_all_sessions_ended([this] { maybe_exit(); });
  scheduler_.recover();
  asio::co_spawn(io_, scheduler_.run(), [](std::exception_ptr e) {
    if (e) log::error("crash", {{"where", "scheduler"}});
  });
  log::event("started", {}, {{"version", MAILFERRY_VERSION}, {"spool", cfg_->spool_dir},
                             {"upstream", cfg_->upstream.host}});
  notify_service_manager("READY=1");   // listeners are bound and the spool is open
  io_.run();
  // Stopped. A second SIGTERM from an impatient supervisor must not turn this clean exit into
  // "killed by a signal" once the signal_set is gone and the default action is back: from here
  // the signals stay pending (the pool's threads were created with every signal blocked) and die
  // with the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop_signals, s);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  disk_.join();
  log::event("stopped", {}, {});
  return ExitCode::ok;
}

void Daemon::on_signal(int signo) {
  if (signo == SIGHUP) {
    if (stopping_) return;
    notify_reloading();
    reload();
    notify_service_manager("READY=1");   // with the new config, or still the old one if refused
    return;
  }
  if (stopping_) return;
  stopping_ = true;
  notify_service_manager("STOPPING=1");
  log::event("stopping", {}, {{"signal", signo == SIGTERM ? "TERM" : "INT"},
                              {"sessions", std::to_string(connections_.size())}});
  for (auto& l : listeners_) {
    std::error_code ec;
    l.acceptor.close(ec);
  }
  {
    std::error_code ec;
    local_acceptor_.close(ec);
  }
  scheduler_.stop();
  // Idle sessions get 421 now; a session in a transaction finishes it first.
  const auto now = Clock::now();
  for (auto& c : connections_) {
    c.session->handle_shutdown(now);
    std::error_code ec;
    c.stream->socket().cancel(ec);
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, drain_bound);
  timer->async_wait([this, timer](std::error_code) { io_.stop(); });
  maybe_exit();
}

// SIGHUP: read the config file again. Everything that can fail (parsing, certificates, binding new
// listeners) happens before anything switches, so a bad config changes nothing. Sessions already
// open keep the config they started with; a listener that stays keeps its socket.
void Daemon::reload() {
  const auto refuse = [](const std::string& why) {
    log::event("reload_refused", {}, {{"error", why}, {"hint", "the running config stays in force; fix the file "
                                                                "and send SIGHUP again"}},
               log::Level::error);
  };
  auto loaded = config::load_config(config_flag_, env_);
  if (!loaded) return refuse(loaded.error().message);
  for (const auto& w : loaded->warnings) log::warning("config_warning", {{"problem", w}});
  auto next = std::make_shared<const config::Config>(std::move(loaded->config));
  if (next->spool_dir != cfg_->spool_dir) {
    return refuse("spool_dir changed from " + cfg_->spool_dir + " to " + next->spool_dir +
                  ": a new spool needs a restart");
  }
  auto prepared = prepare(*next);
  if (!prepared) return refuse(prepared.error().message);

  // New listeners are bound aside first: a port that is taken refuses the whole reload.
  std::list<Listener> added;
  for (const auto& l : next->listen) {
    const bool kept = std::any_of(listeners_.begin(), listeners_.end(), [&](const Listener& have) {
      return !have.retired && same_endpoint(have.listen, l);
    });
    if (kept) continue;
    auto it = added.insert(added.end(), Listener{asio::ip::tcp::acceptor(io_), l});
    if (auto opened = open_listener(it->acceptor, l); !opened) return refuse(opened.error().message);
  }

  std::shared_ptr<MetricsEndpoint> metrics = metrics_;
  if (next->metrics.address != cfg_->metrics.address) {
    auto endpoint = open_metrics(*next);
    if (!endpoint) return refuse(endpoint.error().message);
    metrics = std::move(*endpoint);
  }

  // Nothing can fail from here on.
  if (metrics != metrics_) {
    if (metrics_) metrics_->close();
    metrics_ = std::move(metrics);
    if (metrics_) metrics_->start();
  }
  int removed = 0;
  for (auto& have : listeners_) {
    if (have.retired) continue;
    const auto now = std::find_if(next->listen.begin(), next->listen.end(),
                                  [&](const config::Listen& l) { return same_endpoint(have.listen, l); });
    if (now == next->listen.end()) {
      have.retired = true;
      std::error_code ec;
      have.acceptor.close(ec);   // its loop ends and forgets it; its open sessions go on
      log::event("listener_closed", {}, {{"address", have.listen.address}});
      ++removed;
    } else if (!(have.listen == *now)) {
      have.listen = *now;
      log_listening(have.listen);
    }
  }
  std::vector<std::list<Listener>::iterator> fresh;   // list iterators stay valid across splice
  for (auto it = added.begin(); it != added.end(); ++it) fresh.push_back(it);
  listeners_.splice(listeners_.end(), added);
  for (auto it : fresh) start_accepting(it);

  if (next->log_format != cfg_->log_format) install_log_sink(next->log_format);
  for (const auto& w : secret_file_warnings(*next)) log::warning("insecure_file", {{"problem", w}});
  server_tls_ = std::move(prepared->server_tls);
  scheduler_.reconfigure(next, std::move(prepared->upstream_tls));
  cfg_ = std::move(next);
  log::event("reloaded", {}, {{"config", config::config_file_path(config_flag_, env_)}, {"listeners", std::to_string(cfg_->listen.size())},
                              {"added", std::to_string(fresh.size())}, {"removed", std::to_string(removed)},
                              {"users", std::to_string(cfg_->users.size())}, {"upstream", cfg_->upstream.host},
                              {"sessions", std::to_string(connections_.size())}});
}

Result<std::shared_ptr<MetricsEndpoint>> Daemon::open_metrics(const config::Config& cfg) {
  if (cfg.metrics.address.empty()) return std::shared_ptr<MetricsEndpoint>();
  auto where = config::parse_listen_address(cfg.metrics.address);
  if (!where) return Error{"[metrics] address: " + where.error().message};
  asio::ip::tcp::acceptor acceptor(io_);
  if (auto opened = open_listener(acceptor, *where); !opened) return opened.error();
  MetricsSource source{[this] { return metrics_snapshot(); }, [this] { return not_ready(); }};
  return std::make_shared<MetricsEndpoint>(std::move(acceptor), cfg.metrics.address, std::move(source));
}

metrics::Snapshot Daemon::metrics_snapshot() const {
  metrics::Snapshot s;
  s.version = MAILFERRY_VERSION;
  s.counters = counters_;
  // Every listener has its series from the start, so a rate() or an alert never sees one appear.
  for (const auto& l : cfg_->listen) {
    s.counters.received.try_emplace(l.address, 0);
    s.counters.auth_failures.try_emplace(l.address, 0);
    s.sessions_active.try_emplace(l.address, 0);
  }
  s.counters.received.try_emplace("sendmail", 0);
  s.sessions_active.try_emplace("sendmail", 0);
  for (const auto& c : connections_) {
    ++s.sessions_active[c.listener];
    const auto& rejected = c.session->rejections();
    for (std::size_t i = 0; i < rejected.size(); ++i) s.counters.rejected[i] += rejected[i];
  }
  const auto counts = scheduler_.counts();
  s.queued = counts.queued;
  s.deferred_now = counts.deferred;
  s.failed = spool_.list(spool::Area::failed).size();
  if (const auto oldest = scheduler_.oldest_arrival()) {
    const auto age = std::chrono::system_clock::now() - *oldest;
    s.oldest_queued_seconds = std::max(0.0, std::chrono::duration<double>(age).count());
  }
  s.upstream_port = scheduler_.upstream_port();
  s.process = read_process_stats();
  return s;
}

std::optional<std::string> Daemon::not_ready() const {
  if (stopping_) return "draining";
  // Writable as the spool uses it: the queue's directory, on a file system with room left.
  if (::access(cfg_->spool_dir.c_str(), W_OK) != 0) {
    return "spool " + cfg_->spool_dir + " is not writable: " + std::strerror(errno);
  }
  struct statvfs fs {};
  if (::statvfs(cfg_->spool_dir.c_str(), &fs) == 0 && fs.f_bavail == 0) return "spool " + cfg_->spool_dir + " is full";
  return std::nullopt;
}

void Daemon::maybe_exit() {
  if (stopping_ && connections_.empty() && scheduler_.active_sessions() == 0) io_.stop();
}

asio::awaitable<void> Daemon::accept_failed(std::string listener, std::error_code ec) {
  // The connection that failed stays in the listen queue, so an immediate retry fails the same
  // way: without the pause the loop spins a core and writes a log line per try (megabytes a
  // second). Postfix and nginx pause likewise.
  const auto now = Clock::now();
  if (!last_accept_error_log_ || now - *last_accept_error_log_ >= accept_error_log_interval) {
    last_accept_error_log_ = now;
    log::warning("accept_error", {{"listener", listener}, {"error", ec.message()},
                                  {"hint", "out of descriptors? raise the open-files limit (ulimit -n, LimitNOFILE=)"}});
  }
  asio::steady_timer pause(io_, accept_retry_pause);
  co_await pause.async_wait(use_tuple);
}

asio::awaitable<void> Daemon::accept_local(asio::local::stream_protocol::acceptor& acceptor) {
  // Messages from local users: trusted like loopback on an auth = "none" listener, counted as
  // listener "sendmail".
  static const config::Listen sendmail_listener{"sendmail", "", 0, config::ListenTls::none,
                                                config::ListenAuth::none, false, {}};
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) co_return;
      const std::string where = "sendmail";
      co_await accept_failed(where, ec);
      continue;
    }
    if (connections_.size() >= max_connections) continue;
    net::Stream::Socket generic(std::move(socket));
    std::string peer = local_peer(generic);
    auto stream = std::make_unique<net::Stream>(std::move(generic), std::move(peer));
    ConfigPtr cfg = cfg_;
    asio::co_spawn(io_, serve_connection(std::move(stream), true, sendmail_listener, cfg),
                   [](std::exception_ptr e) {
                     if (e) log::error("crash", {{"where", "session"}});
                   });
  }
}

asio::awaitable<void> Daemon::accept_loop(std::list<Listener>::iterator listener) {
  while (!stopping_ && !listener->retired) {
    auto [ec, socket] = co_await listener->acceptor.async_accept(use_tuple);
    if (listener->retired) break;
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) co_return;
      const std::string where = listener->listen.address;
      co_await accept_failed(where, ec);
      continue;
    }
    // The listener's settings as they are now (a reload may have changed them), for this session.
    const config::Listen listen = listener->listen;
    ConfigPtr cfg = cfg_;
    std::error_code pec;
    const asio::ip::address from = unmapped(socket.remote_endpoint(pec).address());
    if (pec) continue;   // already gone
    auto stream = std::make_unique<net::Stream>(net::Stream::Socket(std::move(socket)), from.to_string());
    if (!listen.proxy_protocol) {
      admit(std::move(stream), from, listen, cfg);
      continue;
    }
    if (!in_networks(listen.proxy_from, from) || connections_.size() >= max_connections) {
      // Only a configured proxy may say who the client is; anyone else is closed without a word.
      log::warning("rejected", {{"reason", "not_in_proxy_from"}, {"client", from.to_string()},
                                {"listener", listen.address}});
      ++counters_.rejected[static_cast<std::size_t>(smtp::Rejection::protocol)];
      stream->close();
      continue;
    }
    asio::co_spawn(io_, read_proxy_header(std::move(stream), from, listen, cfg), [](std::exception_ptr e) {
      if (e) log::error("crash", {{"where", "proxy"}});
    });
  }
  if (listener->retired) listeners_.erase(listener);
}

asio::awaitable<void> Daemon::read_proxy_header(std::unique_ptr<net::Stream> stream, asio::ip::address from,
                                                config::Listen listen, ConfigPtr cfg) {
  smtp::ProxyHeaderParser parser;
  std::array<char, 1024> buffer{};
  const auto deadline = Clock::now() + proxy_header_timeout;
  std::string why = "closed before a header";
  while (parser.status() == smtp::ProxyHeaderParser::Status::need_more && !stopping_) {
    const auto r = co_await stream->read_some(buffer, deadline);
    if (r.timed_out) why = "no header within " + std::to_string(proxy_header_timeout.count()) + " s";
    if (r.timed_out || r.error || r.bytes == 0) break;
    parser.feed(std::span<const char>(buffer.data(), r.bytes));
  }
  if (parser.status() != smtp::ProxyHeaderParser::Status::done) {
    if (parser.status() == smtp::ProxyHeaderParser::Status::invalid) why = parser.error();
    log::warning("rejected", {{"reason", "proxy_header"}, {"client", from.to_string()},
                              {"listener", listen.address}, {"error", why}});
    ++counters_.rejected[static_cast<std::size_t>(smtp::Rejection::protocol)];
    stream->close();
    co_return;
  }
  // PROXY with an address: that is the client. LOCAL (the proxy's own health check) or an
  // unknown family: the connection's own endpoints, as the protocol says.
  asio::ip::address client = from;
  const auto& header = parser.header();
  if (header.command == smtp::ProxyHeader::Command::proxy && header.has_address()) {
    std::error_code ec;
    const auto parsed = asio::ip::make_address(smtp::effective_source(header).text, ec);
    if (!ec) client = unmapped(parsed);
  }
  stream->set_peer_address(client.to_string());
  const auto rest = parser.remaining();
  if (!rest.empty()) stream->unread(std::string(rest.data(), rest.size()));   // SMTP or a TLS hello
  admit(std::move(stream), client, listen, cfg);
}

void Daemon::admit(std::unique_ptr<net::Stream> stream, const asio::ip::address& client,
                   const config::Listen& listen, const ConfigPtr& cfg) {
  const std::string peer = client.to_string();
  const bool peer_trusted = in_networks(cfg->trusted_networks, client);
  if ((!peer_trusted && per_address_[peer] >= max_connections_per_address) ||
      connections_.size() >= max_connections) {
    log::warning("rejected", {{"reason", "connections"}, {"client", peer}, {"listener", listen.address}});
    ++counters_.rejected[static_cast<std::size_t>(smtp::Rejection::rate)];
    asio::co_spawn(io_, refuse_connection(std::move(stream), cfg->hostname), [](std::exception_ptr e) {
      if (e) log::error("crash", {{"where", "refuse"}});
    });
    return;
  }
  ++per_address_[peer];
  asio::co_spawn(io_, serve_connection(std::move(stream), peer_trusted, listen, cfg),
                 [this, peer](std::exception_ptr e) {
    if (e) log::error("crash", {{"where", "session"}});
    if (--per_address_[peer] <= 0) per_address_.erase(peer);
  });
}

// A full disk or quota (or a file size limit) is "452 4.3.1", which tells the client to try later;
// any other spool failure is "451 4.3.0".
smtp::CommitError commit_error(const Error& e) {
  switch (e.sys_errno) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return smtp::CommitError::no_space;
    default:
      return smtp::CommitError::io;
  }
}

struct CommitOutcome {
  std::optional<spool::QueueId> id;
  Error error;
};

// A plain coroutine function, not a capturing lambda: its arguments live in its own frame.
asio::awaitable<CommitOutcome> commit_on_pool(spool::Incoming* incoming, message::Envelope env) {
  auto r = incoming->commit(std::move(env));
  if (r) co_return CommitOutcome{*r, {}};
  co_return CommitOutcome{std::nullopt, r.error()};
}

// Arguments of a coroutine call come from named locals, never from temporaries made in the same
// full-expression as the co_await: g++ 12 mishandles those (a wrong `this`, a trap at run time).
asio::awaitable<bool> tls_handshake(net::Stream& stream, smtp::ServerSession& session,
                                    std::shared_ptr<tls::ServerContext> context) {
  auto engine = tls::TlsEngine::server(std::move(context));
  const auto deadline = Clock::now() + handshake_timeout;
  const bool ok = co_await stream.start_tls(std::move(engine), deadline);
  if (!ok) {
    log::warning("tls_failed", {{"client", stream.peer_address()}, {"error", stream.tls_error()}});
    co_return false;
  }
  session.handle_tls_established(smtp::TlsInfo{stream.tls_version(), stream.tls_cipher()}, Clock::now());
  co_return true;
}

// crypt(3) is slow on purpose (yescrypt: tens of ms): it runs on the pool, not the loop.
asio::awaitable<bool> verify_on_pool(std::string password, std::string hash) {
  co_return auth::verify_password(password, hash);
}

asio::awaitable<smtp::AuthResult> Daemon::authenticate(const smtp::server_action::Authenticate& auth,
                                                       const std::string& client, const config::Listen& listen) {
  smtp::AuthResult result;
  if (throttle_.locked_out(client, Clock::now())) {
    result.verdict = smtp::AuthResult::Verdict::locked_out;
    ++counters_.auth_failures[listen.address];
    log::warning("auth", {{"client", client}, {"user", auth.user}, {"listener", listen.address},
                          {"mechanism", auth.mechanism}, {"result", "locked_out"}});
    co_return result;
  }
  // The wait is decided by the failures before this attempt and applies to every answer, success
  // included: a client that hangs up early must not learn the verdict sooner.
  const auto delay = throttle_.delay_before_reply(client, Clock::now());
  // The users as configured now (a reload applies to the next AUTH, in open sessions too); held
  // here so that a reload during the hash check cannot pull them away.
  const ConfigPtr cfg = cfg_;
  const auto user = std::find_if(cfg->users.begin(), cfg->users.end(),
                                 [&](const config::User& u) { return u.name == auth.user; });
  const std::string& hash = user != cfg->users.end() ? user->password_hash : dummy_hash_;
  bool ok = co_await asio::co_spawn(disk_, verify_on_pool(auth.password.reveal(), hash), asio::use_awaitable);
  ok = ok && user != cfg->users.end();
  const auto now = Clock::now();
  if (ok) {
    throttle_.record_success(client, now);
    result.verdict = smtp::AuthResult::Verdict::ok;
    result.allowed_senders = user->allowed_senders;
  } else {
    throttle_.record_failure(client, now);
    result.verdict = smtp::AuthResult::Verdict::bad_credentials;
    ++counters_.auth_failures[listen.address];
  }
  if (delay.count() > 0) {
    asio::steady_timer timer(io_, delay);
    co_await timer.async_wait(use_tuple);
  }
  log::event("auth", {}, {{"client", client}, {"user", auth.user}, {"listener", listen.address},
                          {"mechanism", auth.mechanism}, {"result", ok ? "ok" : "failed"}},
             ok ? log::Level::info : log::Level::warning);
  co_return result;
}

asio::awaitable<void> Daemon::serve_connection(std::unique_ptr<net::Stream> stream_ptr, bool peer_trusted,
                                               config::Listen listen, ConfigPtr cfg) {
  net::Stream& stream = *stream_ptr;
  smtp::SessionPolicy policy;
  policy.hostname = cfg->hostname;
  policy.limits.max_message_size = cfg->max_message_size;
  policy.auth_required = listen.auth == config::ListenAuth::required;
  policy.peer_trusted = peer_trusted;
  policy.starttls_offered = listen.tls == config::ListenTls::starttls;
  policy.implicit_tls = listen.tls == config::ListenTls::implicit;
  policy.auth_offered = !cfg->users.empty();
  // Only the local sendmail socket may start a queue run (a TCP listener's address is host:port).
  policy.queue_control = listen.address == "sendmail";
  smtp::ServerSession session(policy);
  auto registration = connections_.insert(connections_.end(), Connection{&session, &stream, listen.address});

  std::optional<spool::Incoming> incoming;
  std::optional<smtp::Transaction> txn;
  Error write_error;
  bool write_failed = false;
  // One TLS record's worth: an idle session's memory is mostly this frame (64 KiB made it
  // ~72 KiB per idle connection, 16 KiB ~24 KiB), and larger reads gain nothing measurable.
  std::array<char, 16384> buffer{};

  session.handle_connected(Clock::now());
  bool open = true;
  if (policy.implicit_tls) {
    // Port 465 style: TLS first, then the greeting (RFC 8314 §3.3).
    open = co_await tls_handshake(stream, session, server_tls_);
  }
  if (stopping_) session.handle_shutdown(Clock::now());
  while (open) {
    while (open) {
      auto action = session.poll_action();
      if (!action) break;
      if (auto* send = std::get_if<smtp::server_action::Send>(&*action)) {
        if (!co_await stream.write_all(send->bytes, Clock::now() + policy.limits.command_timeout)) {
          session.handle_eof(Clock::now());
        }
      } else if (auto* begin = std::get_if<smtp::server_action::BeginMessage>(&*action)) {
        txn = begin->transaction;
        write_failed = false;
        auto inc = spool_.begin(std::chrono::system_clock::now());
        if (!inc) {
          write_failed = true;
          write_error = inc.error();
          continue;
        }
        incoming.emplace(std::move(*inc));
        message::ReceivedInfo info;
        info.helo = txn->helo;
        // A local sendmail user has no address: Received: names the user instead (as Postfix's
        // "from userid"), in the comment where an address would go.
        const bool local = listen.address == "sendmail";
        if (local) info.client_rdns_or_empty = stream.peer_address();
        else info.client_address = stream.peer_address();
        info.by_host = cfg->hostname;
        info.protocol = txn->protocol;
        if (txn->recipients.size() == 1) info.for_recipient = txn->recipients.front();
        info.when = std::chrono::system_clock::now();
        const std::string received = message::received_header(info);
        if (auto w = incoming->write(std::span<const char>(received.data(), received.size())); !w) {
          write_failed = true;
          write_error = w.error();
        }
      } else if (auto* append = std::get_if<smtp::server_action::AppendData>(&*action)) {
        if (incoming && !write_failed) {
          if (auto w = incoming->write(std::span<const char>(append->bytes.data(), append->bytes.size())); !w) {
            write_failed = true;
            write_error = w.error();
          }
        }
      } else if (auto* flush = std::get_if<smtp::server_action::FlushQueue>(&*action)) {
        log::event("flush", flush->queue_id, {{"client", stream.peer_address()}});
        if (flush->queue_id.empty()) scheduler_.flush();
        else session.handle_queue_result(scheduler_.retry(flush->queue_id), Clock::now());
      } else if (std::holds_alternative<smtp::server_action::ReportStatus>(*action)) {
        // `mailferry status`: answered from memory (plus one directory listing), not logged.
        const auto counts = scheduler_.counts();
        const auto last = scheduler_.last_delivery();
        const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
        session.handle_status({"ready=" + std::string(stopping_ ? "no" : "yes"),
                               "version=" + std::string(MAILFERRY_VERSION),
                               "uptime_seconds=" + std::to_string(uptime),
                               "queued=" + std::to_string(counts.queued),
                               "deferred=" + std::to_string(counts.deferred),
                               "failed=" + std::to_string(spool_.list(spool::Area::failed).size()),
                               "upstream_port=" + std::to_string(scheduler_.upstream_port()),
                               "last_delivery=" + (last ? format_utc(*last) : std::string("none")),
                               "sessions=" + std::to_string(connections_.size())},
                              Clock::now());
      } else if (auto* del = std::get_if<smtp::server_action::DeleteMessage>(&*action)) {
        const std::string id = del->queue_id;
        const bool found = co_await scheduler_.remove(id);
        session.handle_queue_result(found, Clock::now());
      } else if (std::holds_alternative<smtp::server_action::AbortMessage>(*action)) {
        incoming.reset();   // an uncommitted Incoming removes itself
      } else if (std::holds_alternative<smtp::server_action::CommitMessage>(*action)) {
        const auto now = Clock::now();
        if (write_failed || !incoming) {
          log::event("spool_error", {}, {{"client", stream.peer_address()}, {"error", write_error.message}},
                     log::Level::error);
          incoming.reset();
          session.handle_commit_failed(commit_error(write_error), now);
          continue;
        }
        message::Envelope env;
        env.sender = txn->sender;
        for (auto& r : txn->recipients) env.recipients.push_back(message::Recipient{r, {}, {}});
        env.body_8bit = txn->body_8bit;
        env.smtputf8 = txn->smtputf8;
        env.user = txn->user;
        env.client = stream.peer_address();
        env.listener = listen.address;
        env.arrival = std::chrono::system_clock::now();
        env.size = incoming->size();
        // fsync on the pool: the loop keeps serving other sessions while this one waits.
        CommitOutcome outcome =
            co_await asio::co_spawn(disk_, commit_on_pool(&*incoming, env), asio::use_awaitable);
        incoming.reset();
        if (outcome.id) {
          log::event("received", outcome.id->str(),
                     {{"client", env.client}, {"user", env.user}, {"from", "<" + env.sender + ">"},
                      {"nrcpt", std::to_string(env.recipients.size())}, {"size", std::to_string(env.size)}});
          ++counters_.received[listen.address];
          scheduler_.enqueue(*outcome.id, env);
          session.handle_committed(outcome.id->str(), Clock::now());
        } else {
          log::event("spool_error", {}, {{"client", env.client}, {"error", outcome.error.message}},
                     log::Level::error);
          session.handle_commit_failed(commit_error(outcome.error), Clock::now());
        }
      } else if (std::holds_alternative<smtp::server_action::StartTls>(*action)) {
        if (!co_await tls_handshake(stream, session, server_tls_)) open = false;
      } else if (auto* auth = std::get_if<smtp::server_action::Authenticate>(&*action)) {
        const smtp::AuthResult verdict = co_await authenticate(*auth, stream.peer_address(), listen);
        session.handle_auth_result(verdict, Clock::now());
      } else if (std::holds_alternative<smtp::server_action::Close>(*action)) {
        open = false;
      }
    }
    if (!open) break;
    const auto r = co_await stream.read_some(buffer, session.poll_deadline());
    const auto now = Clock::now();
    if (r.timed_out) {
      session.handle_timeout(now);
    } else if (r.error == asio::error::operation_aborted && stopping_) {
      continue;   // woken by the stop: the loop above sends the 421
    } else if (r.bytes == 0 || r.error) {
      session.handle_eof(now);
    } else {
      session.handle_bytes(std::span<const char>(buffer.data(), r.bytes), now);
    }
  }
  stream.close();
  const auto& rejected = session.rejections();
  for (std::size_t i = 0; i < rejected.size(); ++i) counters_.rejected[i] += rejected[i];
  connections_.erase(registration);
  maybe_exit();
}

}  // namespace

std::string local_socket_name(const config::Config& config) {
  // Abstract namespace (leading NUL): no file to create, permission or clean up after a crash.
  return std::string(1, '\0') + "mailferry:" + config.spool_dir;
}

namespace {
// Up to 1000 sessions, each with a descriptor (two with its spool file open), plus listeners,
// upstream connections and the spool: more than the soft limit of 1024 that systemd and most
// shells give. The hard limit is what the administrator allows; take it.
void raise_open_files_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
}
}  // namespace

ExitCode serve(const config::Config& config, const std::string& config_flag, config::Environment env) {
  install_log_sink(config.log_format);
  raise_open_files_limit();
  std::optional<RunAs> run_as;
  if (geteuid() == 0 && config.run_as.empty()) {
    log::warning("running_as_root", {{"hint", "set run_as = \"mailferry\" in the config"}});
  } else if (geteuid() == 0) {
    auto user = resolve_run_as(config.run_as);
    if (!user) {
      std::fprintf(stderr, "mailferry: %s\n", user.error().message.c_str());
      return ExitCode::no_user;
    }
    run_as = std::move(*user);
  } else if (!config.run_as.empty()) {
    // Already unprivileged (systemd's User=, a container's USER): nothing to switch.
    log::warning("run_as_ignored", {{"run_as", config.run_as}, {"reason", "not started as root"}});
  }
  auto spool = spool::Spool::open(config.spool_dir);
  if (!spool) {
    std::fprintf(stderr, "mailferry: %s\n", spool.error().message.c_str());
    return ExitCode::cant_create;
  }
  // A certificate, key or ca_file that cannot be loaded stops the start.
  auto prepared = prepare(config);
  if (!prepared) {
    std::fprintf(stderr, "mailferry: %s\n", prepared.error().message.c_str());
    return ExitCode::config;
  }
  Daemon daemon(std::make_shared<const config::Config>(config), config_flag, std::move(env), std::move(*spool),
                std::move(*prepared), std::move(run_as));
  return daemon.run();
}

}  // namespace mailferry::daemon
