// queue_id.hpp: QueueId, the name of a spooled message — in the 250 reply, every log line and `queue`.
// Made only by the spool (Spool::begin names the incoming message; Incoming::commit hands it out).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mailferry/base/time.hpp"

namespace mailferry::spool {

class QueueId {
 public:
  // 14 characters of Crockford base32 (digits and upper-case letters without I, L, O, U):
  // time in microseconds, so ids sort by arrival, then bits of `entropy` against collisions.
  static QueueId make(WallTime now, std::uint64_t entropy);
  // Accepts exactly what make() produces; anything else (a path, "..", lower case) is nullopt.
  static std::optional<QueueId> parse(std::string_view text);

  const std::string& str() const { return text_; }
  friend bool operator==(const QueueId&, const QueueId&) = default;
  friend auto operator<=>(const QueueId&, const QueueId&) = default;

 private:
  explicit QueueId(std::string t) : text_(std::move(t)) {}
  std::string text_;
};

}  // namespace mailferry::spool
