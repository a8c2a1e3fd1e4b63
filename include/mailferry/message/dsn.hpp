// dsn.hpp: builds the RFC 3464 delivery status notification (the bounce) for a message that
// failed permanently or outlived max_age. Pure: every time is passed in, nothing is read or
// written; the caller spools the result. Nothing taken from the upstream's replies, the addresses
// or the original message can add a header field or a MIME boundary to the bounce.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mailferry/base/time.hpp"

namespace mailferry::message {

struct FailedRecipient {
  std::string address;
  std::string diagnostic;   // the upstream's reply summary, e.g. "550 5.1.1 No such user"
  bool expired = false;     // max_age passed
};

struct DsnInput {
  std::string reporting_host;   // our hostname (Reporting-MTA: dns; host)
  std::string queue_id;         // the failed message's id
  WallTime arrival;             // when we accepted it
  WallTime now;                 // when the bounce is made
  std::string original_sender;  // the bounce goes to it
  std::vector<FailedRecipient> failed;
  std::string_view original_message;   // the stored message (CRLF lines); only its header is included
  std::string boundary_seed;           // unique text for the MIME boundary (e.g. the queue id)
};

// The RFC 3464 Status for one recipient: 4.4.7 when expired (RFC 3463 "delivery time expired");
// otherwise the enhanced code that follows the reply code in the diagnostic ("550 5.1.1 …") when it
// is a 5.x.y one, else 5.0.0.
std::string dsn_status(const FailedRecipient& r);

// The complete bounce message (CRLF lines, none over 998 octets), to be spooled with a NULL
// envelope sender and original_sender as its only recipient. Never called for a null original
// sender (caller's rule). multipart/report with three parts: a text/plain explanation, the
// message/delivery-status report and the original header section as text/rfc822-headers.
std::string build_dsn(const DsnInput& in);

}  // namespace mailferry::message
