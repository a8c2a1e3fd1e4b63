// scheduler.cpp: delivery rounds and what each answer does to the spool.
#include "daemon/scheduler.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include "mailferry/base/log.hpp"
#include "mailferry/message/header_scan.hpp"
#include "mailferry/message/trace_headers.hpp"
#include "net/upstream.hpp"

namespace mailferry::daemon {
namespace {

std::string format_time(WallTime t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string bracketed(const std::string& a) { return "<" + a + ">"; }

}  // namespace

Scheduler::Scheduler(asio::any_io_executor ex, spool::Spool& spool, const config::Config& config)
    : ex_(ex), spool_(spool), config_(config), retry_(config.queue.retry_schedule, config.queue.max_age), wake_(ex) {}

void Scheduler::recover() {
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

void Scheduler::stop() {
  stopping_ = true;
  wake();
}

asio::awaitable<void> Scheduler::run() {
  while (!stopping_) {
    const WallTime now = std::chrono::system_clock::now();
    WallTime next_due = now + std::chrono::hours(1);
    std::vector<spool::QueueId> batch;
    for (auto& [id, entry] : queue_) {
      if (entry.in_flight) continue;
      if (entry.envelope.next_attempt <= now) {
        if (active_sessions_ < max_sessions) {
          batch.push_back(id);
          if (batch.size() == max_batch) {
            for (const auto& b : batch) queue_.at(b).in_flight = true;
            ++active_sessions_;
            asio::co_spawn(ex_, deliver(std::move(batch)), [](std::exception_ptr e) {
              if (e) log::error("crash", {{"where", "delivery"}});
            });
            batch.clear();
          }
        }
      } else {
        next_due = std::min(next_due, entry.envelope.next_attempt);
      }
    }
    if (!batch.empty() && active_sessions_ < max_sessions) {
      for (const auto& b : batch) queue_.at(b).in_flight = true;
      ++active_sessions_;
      asio::co_spawn(ex_, deliver(std::move(batch)), [](std::exception_ptr e) {
        if (e) log::error("crash", {{"where", "delivery"}});
      });
    }
    // Sleep until the next retry is due or something wakes us (a commit, a finished delivery).
    wake_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(next_due - now));
    co_await wake_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> Scheduler::deliver(std::vector<spool::QueueId> batch) {
  std::vector<net::PortAttempt> attempts;
  auto conn = co_await net::UpstreamConnection::open(config_.upstream, config_.hostname, attempts);
  for (const auto& a : attempts) {
    log::event("connect", {}, {{"host", config_.upstream.host}, {"port", std::to_string(a.port)},
                               {"tls", a.tls}, {"result", a.verdict},
                               {"ms", std::to_string(a.took.count())}},
               a.verdict == "ok" ? log::Level::info : log::Level::warning);
  }
  std::string why = "no upstream port worked:";
  for (const auto& a : attempts) why += " " + std::to_string(a.port) + " " + a.verdict + ";";

  for (const auto& id : batch) {
    auto it = queue_.find(id);
    if (it == queue_.end()) continue;
    Entry& entry = it->second;
    if (!conn) {
      defer_all(id, entry, why);
      continue;
    }
    if (!conn->usable()) {
      // The connection broke on an earlier message: leave this one due for the next round.
      entry.in_flight = false;
      continue;
    }
    auto data = spool_.read_message(id, entry.envelope.size);
    if (!data) {
      log::event("quarantined", id.str(), {{"reason", data.error().message}}, log::Level::error);
      queue_.erase(it);
      continue;
    }
    std::vector<std::size_t> pending;
    smtp::OutgoingMessage out;
    out.sender = entry.envelope.sender;
    out.body_8bit = entry.envelope.body_8bit;
    out.smtputf8 = entry.envelope.smtputf8;
    for (std::size_t i = 0; i < entry.envelope.recipients.size(); ++i) {
      if (entry.envelope.recipients[i].state != message::RecipientState::pending) continue;
      pending.push_back(i);
      out.recipients.push_back(entry.envelope.recipients[i].address);
    }
    const auto info = message::scan_headers(*data);
    out.data = message::add_missing_headers(*data, info, entry.envelope.arrival, id.str(), config_.hostname);
    auto result = co_await conn->send(std::move(out));
    it = queue_.find(id);   // the map may have changed while we waited
    if (it == queue_.end()) continue;
    if (!result) {
      const auto outcome = delivery::transport_failure(conn->failure());
      log::event("attempt", id.str(), {{"port", std::to_string(conn->port())}, {"tls", "none"},
                                       {"reply", outcome.reply}}, log::Level::warning);
      defer_all(id, it->second, outcome.reply);
      continue;
    }
    const auto& final_reply = result->data ? result->data : result->mail;
    log::event("attempt", id.str(), {{"port", std::to_string(conn->port())}, {"tls", "none"},
                                     {"reply", final_reply ? final_reply->summary() : std::string("none")}});
    apply(id, it->second, pending, delivery::classify(*result, pending.size()));
  }
  if (conn) co_await conn->quit();
  --active_sessions_;
  wake();
}

void Scheduler::apply(const spool::QueueId& id, Entry& entry, const std::vector<std::size_t>& pending,
                      const std::vector<delivery::RecipientOutcome>& outcomes) {
  auto& env = entry.envelope;
  bool deferred = false;
  std::string last;
  for (std::size_t k = 0; k < pending.size() && k < outcomes.size(); ++k) {
    auto& rcpt = env.recipients[pending[k]];
    rcpt.last_reply = outcomes[k].reply;
    last = outcomes[k].reply;
    switch (outcomes[k].verdict) {
      case delivery::Verdict::delivered:
        rcpt.state = message::RecipientState::delivered;
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
  if (!deferred) return finish(id, entry);
  defer_all(id, entry, last);
}

void Scheduler::defer_all(const spool::QueueId& id, Entry& entry, const std::string& why) {
  auto& env = entry.envelope;
  entry.in_flight = false;
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
    return finish(id, entry);
  }
  env.next_attempt = *next;
  for (const auto& r : env.recipients) {
    if (r.state != message::RecipientState::pending) continue;
    log::event("deferred", id.str(), {{"rcpt", bracketed(r.address)}, {"next", format_time(*next)},
                                      {"reply", why}}, log::Level::warning);
  }
  if (auto ok = spool_.update(id, env); !ok) {
    // The old envelope stays on disk: the message is retried sooner than planned, never lost.
    log::event("spool_error", id.str(), {{"error", ok.error().message}}, log::Level::error);
  }
}

void Scheduler::finish(const spool::QueueId& id, Entry& entry) {
  const bool any_failed = std::any_of(entry.envelope.recipients.begin(), entry.envelope.recipients.end(),
                                      [](const auto& r) { return r.state == message::RecipientState::failed; });
  Result<void> done = any_failed ? spool_.fail(id, entry.envelope) : spool_.remove(id);
  if (!done) log::event("spool_error", id.str(), {{"error", done.error().message}}, log::Level::error);
  queue_.erase(id);
}

}  // namespace mailferry::daemon
