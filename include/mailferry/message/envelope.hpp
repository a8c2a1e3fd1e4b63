// envelope.hpp: what the spool keeps about a message besides its bytes:
// sender, recipients with their delivery state, who submitted it, when, and the retry state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mailferry/base/time.hpp"

namespace mailferry::message {

enum class RecipientState { pending, delivered, failed };

struct Recipient {
  std::string address;                 // without angle brackets
  RecipientState state = RecipientState::pending;
  std::string last_reply;              // the upstream's last answer for this recipient (summary form)

  friend bool operator==(const Recipient&, const Recipient&) = default;
};

struct Envelope {
  std::string sender;                  // without angle brackets; empty = null sender <>
  std::vector<Recipient> recipients;
  bool body_8bit = false;              // BODY=8BITMIME was given
  bool smtputf8 = false;               // SMTPUTF8 was given
  std::string user;                    // authenticated user; empty when none
  std::string client;                  // submitting client's address, or "sendmail"
  std::string listener;                // listener address, or "sendmail"
  WallTime arrival{};                  // when the 250 was given
  std::uint64_t size = 0;              // bytes of the message file
  std::uint32_t attempts = 0;          // delivery attempts so far
  WallTime next_attempt{};             // not before this; epoch = as soon as possible
  std::string last_reply;              // last upstream reply or transport error, for `queue list`

  friend bool operator==(const Envelope&, const Envelope&) = default;
};

}  // namespace mailferry::message
