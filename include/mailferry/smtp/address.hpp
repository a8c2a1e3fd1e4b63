// address.hpp: RFC 5321 paths — "<local@domain>", "<>" — parsed and checked, without I/O.
// Accepts what real clients send (source routes are dropped, RFC 5321 §4.1.2 / Appendix C);
// refuses control bytes and spaces outside quotes, so an address can never inject into a log
// line, an envelope file or the upstream dialogue.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailferry::smtp {

struct ParsedPath {
  std::string address;   // without brackets; empty for the null path "<>"
  std::string_view rest; // what follows the closing '>' (the ESMTP parameters)
};

// Parses "<...>" at the start of `text`. `allow_utf8`: SMTPUTF8 was given (RFC 6531).
// nullopt when the path is malformed or longer than `max_path`.
std::optional<ParsedPath> parse_path(std::string_view text, bool allow_utf8, std::size_t max_path);

// A mailbox "local@domain" (or a quoted local part). Used for parse_path and for config values.
bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8);

}  // namespace mailferry::smtp
