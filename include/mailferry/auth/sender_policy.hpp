// sender_policy.hpp: which envelope senders an authenticated [[user]] may use (allowed_senders).
// Only compares strings: never parses an address beyond finding its last '@' (the session's
// MAIL FROM parser has already validated it), never looks anything up.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mailferry::auth {

// Whether `envelope_sender` (the MAIL FROM path, with or without its angle brackets; "" or "<>" is
// the null sender) is allowed by `allowed_senders`:
//   - an empty list allows any sender, the null sender included;
//   - "a@example.com" allows exactly that mailbox;
//   - "@example.org" allows any local part at example.org, but not at its subdomains
//     (sub.example.org needs its own entry).
// The whole comparison is ASCII case-insensitive, local part included. RFC 5321 §2.4 lets a
// server treat local parts case-sensitively, but no provider or mailbox host mailferry relays for
// does, and a user who typed "WordPress@" in their config should not see 553s for "wordpress@".
// The null sender (bounces, DSNs) is refused whenever the list is non-empty: it names no mailbox,
// so it cannot be one the user owns, and a restricted user has no business sending bounces.
bool sender_allowed(const std::vector<std::string>& allowed_senders, std::string_view envelope_sender);

}  // namespace mailferry::auth
