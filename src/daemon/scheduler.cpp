// scheduler.cpp: delivery rounds and what each answer does to the spool.
#include "daemon/scheduler.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include "daemon/credentials.hpp"
#include "mailferry/base/log.hpp"
#include "mailferry/message/dsn.hpp"
#include "mailferry/message/header_scan.hpp"
#include "mailferry/message/trace_headers.hpp"
#include "net/upstream.hpp"

namespace mailferry::daemon {
namespace {

std::string bracketed(const std::string& a) { return "<" + a + ">"; }

// Plain coroutine functions (not capturing lambdas): their arguments live in their own frames
// while they run on the disk pool.
asio::awaitable<Result<void>> spool_op_on_pool(spool::Spool* spool, SpoolOp op, spool::QueueId id,
                                                message::Envelope env) {
  switch (op) {
    case SpoolOp::update: co_return spool->update(id, env);
    case SpoolOp::remove: co_return spool->remove(id);
    case SpoolOp::fail: co_return spool->fail(id, env);
  }
  co_return Error{"unknown spool operation"};
}

struct SecretOutcome {
  Secret secret;
  Error error;
};

asio::awaitable<SecretOutcome> secret_on_pool(const config::Upstream* upstream) {
  auto r = upstream_secret(*upstream);
  if (r) co_return SecretOutcome{std::move(*r), {}};
  co_return SecretOutcome{{}, r.error()};
}

struct BounceOutcome {
  std::optional<spool::QueueId> id;
  message::Envelope envelope;
  Error error;
};

// Reads the failed message's header and spools its bounce as a new message: null sender, the
// original sender as the one recipient. Committed before the original moves to failed/, so a
// crash in between can repeat the bounce but never lose it.
asio::awaitable<BounceOutcome> spool_bounce(spool::Spool* spool, spool::QueueId id, message::Envelope failed,
                                            std::string hostname) {
  BounceOutcome out;
  const WallTime now = std::chrono::system_clock::now();
  auto original = spool->read_message(id, failed.size);
  message::DsnInput in;
  in.reporting_host = hostname;
  in.queue_id = id.str();
  in.arrival = failed.arrival;
  in.now = now;
  in.original_sender = failed.sender;
  for (const auto& r : failed.recipients) {
    if (r.state != message::RecipientState::failed) continue;
    in.failed.push_back({r.address, r.last_reply, r.last_reply.rfind("expired after max_age", 0) == 0});
  }
  const std::string original_text = original ? std::move(*original) : std::string();
  in.original_message = original_text;
  in.boundary_seed = id.str();
  const std::string dsn = message::build_dsn(in);
  auto incoming = spool->begin(now);
  if (!incoming) {
    out.error = incoming.error();
    co_return out;
  }
  if (auto w = incoming->write(std::span<const char>(dsn.data(), dsn.size())); !w) {
    out.error = w.error();
    co_return out;
  }
  out.envelope.sender = "";
  out.envelope.recipients.push_back(message::Recipient{failed.sender, {}, {}});
  out.envelope.client = "mailferry";
  out.envelope.listener = "bounce";
  out.envelope.arrival = now;
  out.envelope.size = incoming->size();
  for (unsigned char c : dsn) {
    if (c >= 0x80) {
      out.envelope.body_8bit = true;
      break;
    }
  }
  auto committed = incoming->commit(out.envelope);
  if (!committed) {
    out.error = committed.error();
    co_return out;
  }
  out.id = *committed;
  co_return out;
}

struct ReadOutcome {
  std::optional<std::string> data;
  Error error;
};

asio::awaitable<ReadOutcome> read_on_pool(spool::Spool* spool, spool::QueueId id, std::uint64_t size) {
  auto r = spool->read_message(id, size);
  if (r) co_return ReadOutcome{std::move(*r), {}};
  co_return ReadOutcome{std::nullopt, r.error()};
}

}  // namespace

Scheduler::Scheduler(asio::any_io_executor ex, asio::any_io_executor disk, spool::Spool& spool,
                     std::shared_ptr<const config::Config> config, std::shared_ptr<tls::ClientContext> upstream_tls,
                     metrics::Counters& counters)
    : ex_(ex), disk_(disk), upstream_tls_(std::move(upstream_tls)), spool_(spool), counters_(counters),
      config_(std::move(config)),
      retry_(config_->queue.retry_schedule, config_->queue.max_age), ports_(config_->upstream.ports), wake_(ex) {}

void Scheduler::reconfigure(std::shared_ptr<const config::Config> config,
                            std::shared_ptr<tls::ClientContext> upstream_tls) {
  const auto& before = config_->upstream;
  const auto& after = config->upstream;
  if (before.host != after.host || before.ports != after.ports) ports_ = delivery::PortPlan(after.ports);
  retry_ = delivery::RetrySchedule(config->queue.retry_schedule, config->queue.max_age);
  config_ = std::move(config);
  upstream_tls_ = std::move(upstream_tls);
  wake();
}

namespace {
// spool_dir/upstream-port: the port that worked, so a restart does not wait on a blocked one.
constexpr std::string_view port_note = "upstream-port";
}

void Scheduler::recover() {
  if (auto note = spool_.read_note(port_note)) {
    const int port = std::atoi(note->c_str());
    if (port > 0 && port < 65536) ports_.restore_last_good(static_cast<std::uint16_t>(port), Clock::now());
  }
  std::size_t recovered = 0;
  for (const auto& id : spool_.list(spool::Area::queue)) {
    auto stored = spool_.load(id);
    if (!stored) {
      log::event("quarantined", id.str(), {{"reason", stored.error().message}}, log::Level::error);
      continue;
    }
    queue_.insert_or_assign(id, Entry{std::move(stored->envelope)});
    ++recovered;
  }
  if (recovered > 0) log::event("recovered", {}, {{"messages", std::to_string(recovered)}});
}

void Scheduler::enqueue(const spool::QueueId& id, message::Envelope envelope) {
  queue_.insert_or_assign(id, Entry{std::move(envelope)});
  wake();
}

Scheduler::Counts Scheduler::counts() const {
  Counts c;
  for (const auto& [id, entry] : queue_) ++(entry.envelope.attempts == 0 ? c.queued : c.deferred);
  return c;
}

std::optional<WallTime> Scheduler::oldest_arrival() const {
  std::optional<WallTime> oldest;
  for (const auto& [id, entry] : queue_) {
    if (!oldest || entry.envelope.arrival < *oldest) oldest = entry.envelope.arrival;
  }
  return oldest;
}

void Scheduler::flush() {
  for (auto& [id, entry] : queue_) entry.envelope.next_attempt = WallTime{};
  wake();
}

bool Scheduler::retry(const std::string& text) {
  const auto id = spool::QueueId::parse(text);
  if (!id) return false;
  auto it = queue_.find(*id);
  if (it == queue_.end()) return false;
  it->second.envelope.next_attempt = WallTime{};
  wake();
  return true;
}

asio::awaitable<bool> Scheduler::remove(const std::string& text) {
  const auto id = spool::QueueId::parse(text);
  if (!id) co_return false;
  auto it = queue_.find(*id);
  if (it == queue_.end() || it->second.in_flight) co_return false;
  const message::Envelope env = it->second.envelope;
  queue_.erase(it);
  auto done = co_await asio::co_spawn(disk_, spool_op_on_pool(&spool_, SpoolOp::remove, *id, env), asio::use_awaitable);
  log::event("deleted", id->str(), {{"result", done ? "ok" : done.error().message}});
  co_return done.ok();
}

void Scheduler::stop() {
  stopping_ = true;
  wake();
}

std::vector<spool::QueueId> Scheduler::take_due(WallTime now) {
  std::vector<spool::QueueId> batch;
  for (auto& [id, entry] : queue_) {
    if (entry.in_flight || entry.envelope.next_attempt > now) continue;
    entry.in_flight = true;
    batch.push_back(id);
    if (batch.size() == max_batch) break;
  }
  return batch;
}

void Scheduler::start_session(std::vector<spool::QueueId> batch) {
  ++active_sessions_;
  asio::co_spawn(ex_, deliver(std::move(batch)), [this](std::exception_ptr e) {
    if (e) log::error("crash", {{"where", "delivery"}});
  });
}

asio::awaitable<void> Scheduler::run() {
  while (!stopping_) {
    const WallTime now = std::chrono::system_clock::now();
    // An idle session takes what is due first; new sessions only when none is idle.
    while (active_sessions_ < max_sessions && idle_.empty()) {
      auto batch = take_due(now);
      if (batch.empty()) break;
      start_session(std::move(batch));
    }
    WallTime next_due = now + std::chrono::hours(1);
    for (const auto& [id, entry] : queue_) {
      if (!entry.in_flight && entry.envelope.next_attempt > now) next_due = std::min(next_due, entry.envelope.next_attempt);
    }
    // Sleep until the next retry is due or something wakes us (a commit, a finished delivery).
    wake_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(next_due - now));
    co_await wake_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> Scheduler::deliver(std::vector<spool::QueueId> batch) {
  // This session's config: a reload swaps config_, not what an open connection was made with.
  const std::shared_ptr<const config::Config> config = config_;
  std::vector<net::PortAttempt> attempts;
  net::UpstreamLogin login;
  login.ehlo_name = config->hostname;
  login.tls = upstream_tls_;
  // password_command may take its time (a vault, a token refresher): not on the loop.
  auto secret = co_await asio::co_spawn(disk_, secret_on_pool(&config->upstream), asio::use_awaitable);
  std::unique_ptr<net::UpstreamConnection> conn;
  std::string why;
  if (!secret.error.message.empty()) {
    why = secret.error.message;
    log::event("credentials", {}, {{"error", why}}, log::Level::error);
  } else {
    login.secret = std::move(secret.secret);
    const auto now = Clock::now();
    const bool recheck = ports_.recheck_due(now);
    const auto order = ports_.order(now);
    if (recheck) ports_.record_recheck(now);
    conn = co_await net::UpstreamConnection::open(config->upstream, order, login, attempts);
    learn_ports(attempts, recheck);
    for (const auto& a : attempts) {
      log::event("connect", {}, {{"host", config->upstream.host}, {"port", std::to_string(a.port)},
                                 {"tls", a.tls}, {"result", a.verdict}, {"detail", a.detail},
                                 {"ms", std::to_string(a.took.count())}},
                 a.verdict == "ok" ? log::Level::info : log::Level::warning);
    }
    why = "no upstream port worked:";
    for (const auto& a : attempts) why += " " + std::to_string(a.port) + " " + a.verdict + " (" + a.detail + ");";
  }
  if (!conn) {
    for (const auto& id : batch) co_await defer_all(id, why);
  } else {
    // Keep the connection while messages keep becoming due: one session carries many messages.
    while (!batch.empty()) {
      for (const auto& id : batch) {
        if (conn->usable() && !stopping_) {
          co_await deliver_one(id, *conn);
        } else if (auto it = queue_.find(id); it != queue_.end()) {
          it->second.in_flight = false;   // not tried: due again for the next session
        }
      }
      if (!conn->usable() || stopping_ || config != config_) break;   // reloaded: reconnect with the new config
      batch = take_due(std::chrono::system_clock::now());
      if (batch.empty()) batch = co_await wait_for_work(config);
    }
    co_await conn->quit();
  }
  --active_sessions_;
  wake();
  if (active_sessions_ == 0 && on_all_ended_) on_all_ended_();
}

asio::awaitable<std::vector<spool::QueueId>> Scheduler::wait_for_work(
    const std::shared_ptr<const config::Config>& config) {
  const auto until = std::chrono::steady_clock::now() + idle_keep;
  asio::steady_timer timer(ex_);
  std::vector<spool::QueueId> batch;
  while (batch.empty() && !stopping_ && config == config_ && std::chrono::steady_clock::now() < until) {
    timer.expires_at(until);
    idle_.push_back(&timer);
    co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    idle_.remove(&timer);
    if (stopping_ || config != config_) break;
    batch = take_due(std::chrono::system_clock::now());
  }
  co_return batch;
}

asio::awaitable<void> Scheduler::deliver_one(const spool::QueueId& id, net::UpstreamConnection& conn) {
  auto it = queue_.find(id);
  if (it == queue_.end()) co_return;
  const message::Envelope env = it->second.envelope;
  auto data = co_await asio::co_spawn(disk_, read_on_pool(&spool_, id, env.size), asio::use_awaitable);
  if (!data.data) {
    log::event("quarantined", id.str(), {{"reason", data.error.message}}, log::Level::error);
    queue_.erase(id);
    co_return;
  }
  std::vector<std::size_t> pending;
  smtp::OutgoingMessage out;
  out.sender = env.sender;
  out.body_8bit = env.body_8bit;
  out.smtputf8 = env.smtputf8;
  for (std::size_t i = 0; i < env.recipients.size(); ++i) {
    if (env.recipients[i].state != message::RecipientState::pending) continue;
    pending.push_back(i);
    out.recipients.push_back(env.recipients[i].address);
  }
  const auto info = message::scan_headers(*data.data);
  out.data = message::add_missing_headers(*data.data, info, env.arrival, id.str(), config_->hostname);
  auto result = co_await conn.send(std::move(out));
  if (!result) {
    const auto outcome = delivery::transport_failure(conn.failure());
    log::event("attempt", id.str(), {{"port", std::to_string(conn.port())}, {"tls", conn.tls_mode()},
                                     {"reply", outcome.reply}}, log::Level::warning);
    co_await defer_all(id, outcome.reply);
    co_return;
  }
  const auto& final_reply = result->data ? result->data : result->mail;
  log::event("attempt", id.str(), {{"port", std::to_string(conn.port())}, {"tls", conn.tls_mode()},
                                   {"reply", final_reply ? final_reply->summary() : std::string("none")}});
  const auto outcomes = delivery::classify(*result, pending.size());
  co_await apply(id, pending, outcomes);
}

asio::awaitable<void> Scheduler::apply(const spool::QueueId& id, const std::vector<std::size_t>& pending,
                                       const std::vector<delivery::RecipientOutcome>& outcomes) {
  auto it = queue_.find(id);
  if (it == queue_.end()) co_return;
  auto& env = it->second.envelope;
  bool deferred = false;
  std::string last;
  for (std::size_t k = 0; k < pending.size() && k < outcomes.size(); ++k) {
    auto& rcpt = env.recipients[pending[k]];
    rcpt.last_reply = outcomes[k].reply;
    last = outcomes[k].reply;
    switch (outcomes[k].verdict) {
      case delivery::Verdict::delivered:
        rcpt.state = message::RecipientState::delivered;
        last_delivery_ = std::chrono::system_clock::now();
        log::event("delivered", id.str(), {{"rcpt", bracketed(rcpt.address)}, {"reply", rcpt.last_reply}});
        break;
      case delivery::Verdict::bounced:
        rcpt.state = message::RecipientState::failed;
        log::event("bounced", id.str(), {{"rcpt", bracketed(rcpt.address)}, {"reply", rcpt.last_reply}},
                   log::Level::warning);
        break;
      case delivery::Verdict::deferred:
        deferred = true;
        break;
    }
  }
  env.last_reply = last;
  if (deferred) co_await defer_all(id, last);
  else co_await finish(id);
}

asio::awaitable<void> Scheduler::defer_all(const spool::QueueId& id, const std::string& why) {
  auto it = queue_.find(id);
  if (it == queue_.end()) co_return;
  auto& env = it->second.envelope;
  env.attempts += 1;
  env.last_reply = why;
  const WallTime now = std::chrono::system_clock::now();
  const auto next = retry_.next_attempt(env.arrival, env.attempts, now);
  if (!next) {
    for (auto& r : env.recipients) {
      if (r.state != message::RecipientState::pending) continue;
      r.state = message::RecipientState::failed;
      r.last_reply = "expired after max_age: " + why;
      log::event("bounced", id.str(), {{"rcpt", bracketed(r.address)}, {"reply", r.last_reply}},
                 log::Level::warning);
    }
    co_return co_await finish(id);
  }
  env.next_attempt = *next;
  ++counters_.deferred;
  for (const auto& r : env.recipients) {
    if (r.state != message::RecipientState::pending) continue;
    log::event("deferred", id.str(), {{"rcpt", bracketed(r.address)}, {"next", format_utc(*next)},
                                      {"reply", why}}, log::Level::warning);
  }
  it->second.in_flight = false;
  persist(SpoolOp::update, id, env);
}

asio::awaitable<void> Scheduler::finish(const spool::QueueId& id) {
  auto it = queue_.find(id);
  if (it == queue_.end()) co_return;
  const message::Envelope env = it->second.envelope;
  const bool any_failed = std::any_of(env.recipients.begin(), env.recipients.end(),
                                      [](const auto& r) { return r.state == message::RecipientState::failed; });
  const bool any_delivered = std::any_of(env.recipients.begin(), env.recipients.end(),
                                         [](const auto& r) { return r.state == message::RecipientState::delivered; });
  if (any_delivered) ++counters_.delivered;
  if (any_failed) ++counters_.bounced;
  // Forget it first: it is no longer due, whatever the disk says next.
  queue_.erase(it);
  // One bounce to the envelope sender; never to a null sender (a bounce of a bounce loops).
  if (any_failed && !env.sender.empty()) {
    auto bounce = co_await asio::co_spawn(disk_, spool_bounce(&spool_, id, env, config_->hostname), asio::use_awaitable);
    if (bounce.id) {
      log::event("bounce_queued", bounce.id->str(), {{"for", id.str()}, {"to", bracketed(env.sender)}});
      enqueue(*bounce.id, std::move(bounce.envelope));
    } else {
      log::event("spool_error", id.str(), {{"error", "cannot queue the bounce: " + bounce.error.message}},
                 log::Level::error);
    }
  }
  persist(any_failed ? SpoolOp::fail : SpoolOp::remove, id, env);
}

void Scheduler::learn_ports(const std::vector<net::PortAttempt>& attempts, bool recheck) {
  const auto now = Clock::now();
  for (const auto& a : attempts) {
    ++counters_.upstream_attempts[{a.port, metrics::attempt_result(a.verdict)}];
    if (a.verdict == "ok") {
      if (ports_.record_success(a.port, now) || recheck) {
        const std::string text = std::to_string(a.port) + "\n";
        if (auto w = spool_.write_note(port_note, text); !w) {
          log::warning("spool_error", {{"error", w.error().message}});
        }
      }
    } else if (a.verdict != "rejected" && a.verdict != "auth_rejected") {
      // Blocked, refused, stripped or untrusted: a network problem on that port, not the provider's answer.
      ports_.record_failure(a.port, now);
    }
  }
}

void Scheduler::persist(SpoolOp op, const spool::QueueId& id, const message::Envelope& env) {
  // Not awaited: the delivery goes on with the next message while the disk catches up. A crash
  // before a remove lands means one more delivery of that message (at least once, never less);
  // before an update lands, an earlier retry than planned.
  asio::co_spawn(disk_, spool_op_on_pool(&spool_, op, id, env), [id](std::exception_ptr e, Result<void> r) {
    if (e) log::error("crash", {{"where", "spool"}});
    else if (!r) log::event("spool_error", id.str(), {{"error", r.error().message}}, log::Level::error);
  });
}

}  // namespace mailferry::daemon
