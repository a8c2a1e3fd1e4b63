// sender_policy.cpp: allowed_senders matching.
#include "mailferry/auth/sender_policy.hpp"

#include "mailferry/base/ascii.hpp"

namespace mailferry::auth {
namespace {

// ASCII only (base/ascii.hpp): an SMTPUTF8 address's non-ASCII bytes must match exactly.

bool entry_allows(std::string_view entry, std::string_view sender) {
  if (entry.size() > 1 && entry.front() == '@') {
    // "@example.org": any non-empty local part at exactly that domain. The last '@' splits, since a
    // quoted local part may itself contain '@'.
    const std::size_t at = sender.rfind('@');
    if (at == std::string_view::npos || at == 0) return false;
    return iequals(sender.substr(at + 1), entry.substr(1));
  }
  return !entry.empty() && iequals(entry, sender);
}

}  // namespace

bool sender_allowed(const std::vector<std::string>& allowed_senders, std::string_view envelope_sender) {
  if (allowed_senders.empty()) return true;
  if (envelope_sender.size() >= 2 && envelope_sender.front() == '<' && envelope_sender.back() == '>') {
    envelope_sender = envelope_sender.substr(1, envelope_sender.size() - 2);
  }
  if (envelope_sender.empty()) return false;   // the null sender: see the header
  for (const std::string& entry : allowed_senders) {
    if (entry_allows(entry, envelope_sender)) return true;
  }
  return false;
}

}  // namespace mailferry::auth
