// trace_headers.hpp: the header fields mailferry itself writes into a message — the Received: trace
// field (RFC 5321 §4.4), and Date: / Message-ID: for messages submitted without them (RFC 5322
// §3.6.1, §3.6.4; RFC 6409 §8.2, §8.3 allow the submission server to add them).
// Pure: the time is passed in (gmtime_r converts it, reading no clock); nothing from a client
// reaches the output without being made safe for a header line.
#pragma once

#include <string>
#include <string_view>

#include "mailferry/base/time.hpp"
#include "mailferry/message/header_scan.hpp"

namespace mailferry::message {

struct ReceivedInfo {
  std::string helo;                   // as the client sent it; sanitised here
  std::string client_address;         // "192.0.2.7" or "2001:db8::7" (written as [IPv6:…])
  std::string client_rdns_or_empty;   // verified reverse DNS name, or empty ("unknown")
  std::string by_host;                // our host name
  std::string protocol;               // "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "SMTP", "local" (RFC 3848)
  std::string queue_id;
  std::string for_recipient;          // only when exactly one recipient, else empty (no Bcc leak)
  WallTime when{};
};

// "Received: from HELO (rdns [addr])\r\n\tby host (mailferry) with PROTO id ID\r\n\tfor <rcpt>; DATE\r\n",
// each line folded to at most 78 characters where it has white space to fold at. With neither HELO
// nor client address (local submission) the "from" clause is left out.
std::string received_header(const ReceivedInfo& info);

// RFC 5322 §3.3 date-time in UTC: "Mon, 23 Nov 2026 11:04:05 +0000". English names, not the locale's.
std::string rfc5322_date(WallTime when);

// "Date: Mon, 23 Nov 2026 11:04:05 +0000\r\n"
std::string date_header(WallTime when);

// "Message-ID: <QUEUEID@hostname>\r\n" — unique because queue ids are. An empty host name becomes
// "localhost" so that the id stays syntactically valid.
std::string message_id_header(std::string_view queue_id, std::string_view hostname);

// The message with Date: (from `arrival`) and Message-ID: added at the end of its header section
// where `info` says they are missing, so the Received: written at receipt stays on top. Where the header ends at a line that is not blank (a message starting straight with its
// body, say), a blank line is inserted there, as Postfix's cleanup does: otherwise the first body
// line would read as a broken header field once fields are added. `info` is scan_headers(message).
// Received: is not added here: the caller prepends it at receipt.
std::string add_missing_headers(std::string_view message, const HeaderInfo& info, WallTime arrival,
                                std::string_view queue_id, std::string_view hostname);

}  // namespace mailferry::message
