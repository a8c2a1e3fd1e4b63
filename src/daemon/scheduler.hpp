// scheduler.hpp: Scheduler, which wakes on a commit or a retry timer, hands due messages to the
// upstream in batches over one connection each, and applies each recipient's outcome to the spool.
// It owns the in-memory index of the queue; the spool stays the truth (rebuilt from it at start).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "mailferry/config/config.hpp"
#include "mailferry/delivery/outcome.hpp"
#include "mailferry/delivery/port_plan.hpp"
#include "mailferry/delivery/retry_schedule.hpp"
#include "mailferry/message/envelope.hpp"
#include "mailferry/metrics/metrics.hpp"
#include "mailferry/spool/spool.hpp"

namespace mailferry::net {
class UpstreamConnection;
struct PortAttempt;
}
namespace mailferry::tls {
class ClientContext;
}

namespace mailferry::daemon {

// What a delivery outcome does to a message's files.
enum class SpoolOp { update, remove, fail };

class Scheduler {
 public:
  // `disk` runs the spool's blocking calls (fsync), so the loop thread never waits on the disk.
  // Deliveries, deferrals, bounces and upstream attempts are counted in `counters`.
  Scheduler(asio::any_io_executor ex, asio::any_io_executor disk, spool::Spool& spool,
            std::shared_ptr<const config::Config> config, std::shared_ptr<tls::ClientContext> upstream_tls,
            metrics::Counters& counters);

  // Loads every committed message (at start: what a crash or a stop left behind).
  void recover();
  // A message the listener just committed: deliver it as soon as possible.
  void enqueue(const spool::QueueId& id, message::Envelope envelope);
  asio::awaitable<void> run();
  void stop();
  // A reloaded config (SIGHUP): deliveries started from now on use it. A session under way
  // finishes the message it is sending with the old one, then ends so the next one reconnects.
  // The port plan starts afresh only when the upstream's host or ports changed.
  void reconfigure(std::shared_ptr<const config::Config> config, std::shared_ptr<tls::ClientContext> upstream_tls);
  // Every queued message is due now (sendmail -q, queue flush).
  void flush();
  // One message due now (queue retry ID); false if it is not queued.
  bool retry(const std::string& id);
  // Removes one message from the queue and the spool (queue delete ID); false if it is not
  // queued here, or being delivered right now.
  asio::awaitable<bool> remove(const std::string& id);
  // Deliveries under way (a stop waits for them, within a bound).
  int active_sessions() const { return active_sessions_; }
  // Called whenever the last delivery under way ends (a stop waits for that moment).
  void on_all_sessions_ended(std::function<void()> f) { on_all_ended_ = std::move(f); }
  // Messages waiting: never tried yet, and tried and deferred (in flight ones count as before).
  struct Counts { std::size_t queued = 0, deferred = 0; };
  Counts counts() const;
  // When the oldest message waiting arrived (nullopt: none waiting).
  std::optional<WallTime> oldest_arrival() const;
  // When a recipient was last delivered (nullopt: not since the start).
  std::optional<WallTime> last_delivery() const { return last_delivery_; }
  // The upstream port in use now; 0 before the first connection.
  std::uint16_t upstream_port() const { return ports_.last_good().value_or(0); }

 private:
  struct Entry {
    message::Envelope envelope;
    bool in_flight = false;
  };

  // Marks up to max_batch due messages in flight and returns them, oldest first.
  std::vector<spool::QueueId> take_due(WallTime now);
  void start_session(std::vector<spool::QueueId> batch);
  // One upstream connection: the batch, then whatever else became due meanwhile.
  asio::awaitable<void> deliver(std::vector<spool::QueueId> batch);
  // An upstream session with nothing left to send waits up to idle_keep for more (so a steady
  // trickle of submissions does not cost a connection each); empty when none came, or on a stop
  // or a reload (the session then ends).
  asio::awaitable<std::vector<spool::QueueId>> wait_for_work(const std::shared_ptr<const config::Config>& config);
  asio::awaitable<void> deliver_one(const spool::QueueId& id, net::UpstreamConnection& conn);
  asio::awaitable<void> apply(const spool::QueueId& id, const std::vector<std::size_t>& pending,
                              const std::vector<delivery::RecipientOutcome>& outcomes);
  asio::awaitable<void> defer_all(const spool::QueueId& id, const std::string& why);
  asio::awaitable<void> finish(const spool::QueueId& id);
  // Writes the outcome to the spool on the disk pool, without waiting for it.
  void persist(SpoolOp op, const spool::QueueId& id, const message::Envelope& env);
  // Feeds what the attempts showed into the port plan; keeps the port that worked in the spool.
  void learn_ports(const std::vector<net::PortAttempt>& attempts, bool recheck);
  // Something changed (a commit, a finished delivery, a flush, a stop): the run loop and idle
  // sessions look again.
  void wake() {
    wake_.cancel();
    for (auto* t : idle_) t->cancel();
  }

  static constexpr std::size_t max_batch = 100;       // messages per upstream connection
  static constexpr int max_sessions = 4;              // parallel upstream connections
  // How long an idle upstream connection is kept for more messages (as Postfix's
  // smtp_connection_cache_time_limit, 2 s: short enough for providers' idle timeouts).
  static constexpr auto idle_keep = std::chrono::seconds(2);

  asio::any_io_executor ex_;
  asio::any_io_executor disk_;
  std::shared_ptr<tls::ClientContext> upstream_tls_;
  spool::Spool& spool_;
  metrics::Counters& counters_;
  std::shared_ptr<const config::Config> config_;
  delivery::RetrySchedule retry_;
  delivery::PortPlan ports_;
  std::map<spool::QueueId, Entry> queue_;   // ordered by id, so oldest first
  asio::steady_timer wake_;
  std::function<void()> on_all_ended_;
  std::list<asio::steady_timer*> idle_;   // the timers of sessions in wait_for_work
  int active_sessions_ = 0;
  std::optional<WallTime> last_delivery_;
  bool stopping_ = false;
};

}  // namespace mailferry::daemon
