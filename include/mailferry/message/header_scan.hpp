// header_scan.hpp: reads the RFC 5322 header section of a message — which trace and identity
// fields are present (so Date:/Message-ID: are added only when missing), a field's unfolded value,
// and the addresses in To/Cc/Bcc (for `sendmail -t`).
// Never modifies the message, never allocates a copy of it, never validates more than it must:
// submitted mail is often sloppy, and the upstream is the one that judges it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailferry::message {

struct HeaderInfo {
  bool has_date = false;
  bool has_message_id = false;
  bool has_from = false;
  // Offset where the header section ends: the start of the blank line that separates it from the
  // body; or, when a line that is neither a field nor a folded continuation comes first, the start
  // of that line (the body begins there, as Postfix's cleanup decides); or message.size() when the
  // message is all header. 0 when the message starts with its body.
  std::size_t header_end = 0;
  // Whether header_end points at a blank line (CRLF or LF) rather than at a body line or the end.
  bool blank_line = false;
};

// Field names are matched case-insensitively; lines may end in CRLF or a bare LF.
HeaderInfo scan_headers(std::string_view message);

// The value of the first field called `name`, unfolded (RFC 5322 §2.2.3: each line break before
// white space removed) and trimmed of surrounding white space; nullopt when there is no such field.
std::optional<std::string> header_value(std::string_view message, std::string_view name);

// The values of every field called `name`, in order, each unfolded as header_value does. Sloppy
// mail repeats To: or Cc:, and `sendmail -t` must miss none of them.
std::vector<std::string> header_values(std::string_view message, std::string_view name);

// The addresses in an address-list value (To, Cc, Bcc): "Name <a@b>", bare "a@b", comma-separated
// lists, quoted display names containing commas, comments, and groups ("team: a@b, c@d;" yields
// both, "undisclosed-recipients:;" nothing). Addresses come back as written, without angle
// brackets; a bare local name ("root") comes back as it is for the caller to qualify.
std::vector<std::string> extract_addresses(std::string_view header_value);

}  // namespace mailferry::message
