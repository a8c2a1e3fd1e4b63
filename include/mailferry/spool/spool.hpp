// spool.hpp: Spool, Incoming and Stored — the only code that decides whether a message is durable.
// Plain POSIX calls. Layout under spool_dir:
//   incoming/<id>/message        being received; purged at open (a crash left it unacknowledged)
//   incoming/<id>-<n>.removed/   a removed message on its way out (one rename, then deleted)
//   queue/<id>/{message,envelope} committed: acknowledged with 250, to be delivered
//   failed/<id>/{message,envelope} permanently failed, kept for `queue`
//   corrupt/<id>/                 quarantined: an envelope that did not decode, a size mismatch
//   lock                          flock()ed while a daemon owns the spool
// Thread-safety: distinct Incoming objects may be written and committed on different threads
// (commit does blocking fsyncs and belongs off the event loop). Spool's calls use only directory fds
// fixed at open() and an atomic counter, so they may also run on several threads, as long as calls
// about the same id are serialized by the caller. An Incoming may outlive its Spool.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <span>
#include <string>
#include <vector>

#include "mailferry/base/result.hpp"
#include "mailferry/base/time.hpp"
#include "mailferry/message/envelope.hpp"
#include "mailferry/spool/queue_id.hpp"

namespace mailferry::spool {

enum class Area { queue, failed };

class Spool;

// The write side of one message being received. Move-only; destroying an uncommitted one removes it.
class Incoming {
 public:
  Incoming(Incoming&&) noexcept;
  Incoming& operator=(Incoming&&) noexcept;
  Incoming(const Incoming&) = delete;
  Incoming& operator=(const Incoming&) = delete;
  ~Incoming();

  // Appends to the message file. ENOSPC/EDQUOT come back as an Error with sys_errno set.
  Result<void> write(std::span<const char> bytes);
  std::uint64_t size() const;

  // fsync the message; write and fsync the envelope (its size is set from what was written);
  // rename incoming/<id> to queue/<id>; fsync queue/. Only then does the QueueId exist.
  Result<QueueId> commit(message::Envelope envelope);
  // Removes what was written. Idempotent.
  void abort();

 private:
  friend class Spool;
  struct State;
  explicit Incoming(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

struct Stored {
  QueueId id;
  message::Envelope envelope;
};

class Spool {
 public:
  // Creates the directories if missing, takes the lock (another process holding it → Error naming
  // the directory and its pid), purges incoming/ and stale envelope temp files. Queue ids get their
  // entropy from getrandom(), read once.
  static Result<Spool> open(const std::string& dir);
  // Opens without taking the lock or purging, and creates nothing (a missing spool is an Error):
  // for `queue list` while a daemon runs.
  static Result<Spool> open_shared(const std::string& dir);

  Spool(Spool&&) noexcept;
  Spool& operator=(Spool&&) noexcept;
  ~Spool();

  // A new message being received; `now` names it.
  Result<Incoming> begin(WallTime now);

  // Ids in the area, sorted (so oldest first).
  std::vector<QueueId> list(Area area) const;
  // Reads and decodes the envelope; a file that does not decode is moved to corrupt/ and reported.
  Result<Stored> load(const QueueId& id, Area area = Area::queue);
  // The message bytes; a size different from the envelope's → quarantined and reported.
  Result<std::string> read_message(const QueueId& id, std::uint64_t expected_size,
                                   Area area = Area::queue);
  // Replaces the envelope atomically: temp file, fsync, rename over, fsync the directory.
  Result<void> update(const QueueId& id, const message::Envelope& e);
  // Delivered: removes queue/<id> (the directory fsynced, so it does not come back after a crash).
  Result<void> remove(const QueueId& id, Area area = Area::queue);
  // Permanent failure: writes the final envelope and moves queue/<id> to failed/<id>.
  Result<void> fail(const QueueId& id, const message::Envelope& e);
  // Moves queue/<id> to corrupt/<id>.
  Result<void> quarantine(const QueueId& id);

  const std::string& dir() const;

  // Small facts the daemon keeps across restarts (the upstream port that worked), as
  // spool_dir/<name>. Not durability-critical: a lost note only costs one slower first delivery.
  // `name` is a fixed word chosen by the caller, never user input.
  Result<void> write_note(std::string_view name, std::string_view content);
  std::optional<std::string> read_note(std::string_view name) const;

 private:
  struct State;
  explicit Spool(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace mailferry::spool
