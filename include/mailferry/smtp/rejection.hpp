// rejection.hpp: why a submission was refused, as /metrics counts it
// (mailferry_rejected_total{reason=...}). The session counts the refusals it decides itself; the
// shell adds those it decides before a session exists (connection limits, PROXY headers).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mailferry::smtp {

enum class Rejection : std::uint8_t {
  relay_denied,        // RCPT from a client that may not relay (554 5.7.1)
  auth_required,       // MAIL before AUTH on an auth = "required" listener (530 5.7.0)
  sender_not_allowed,  // MAIL FROM outside the user's allowed_senders (553 5.7.1)
  size,                // SIZE= or data over max_message_size (552 5.3.4)
  recipients,          // over the recipient limit (452 4.5.3)
  rate,                // connection limits, AUTH lock-out (421 4.7.0)
  protocol,            // syntax, sequence, line length, bad PROXY header
};

inline constexpr std::size_t rejection_kinds = 7;
using RejectionCounts = std::array<std::uint64_t, rejection_kinds>;

constexpr std::string_view to_string(Rejection r) {
  constexpr std::array<std::string_view, rejection_kinds> names{
      "relay_denied", "auth_required", "sender_not_allowed", "size", "recipients", "rate", "protocol"};
  return names[static_cast<std::size_t>(r)];
}

}  // namespace mailferry::smtp
