#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "mailferry/message/dsn.hpp"

using namespace mailferry::message;
using mailferry::WallTime;

namespace {

WallTime at(long long seconds) { return WallTime{} + std::chrono::seconds(seconds); }

const std::string original =
    "Received: from client.example.org\r\n"
    "\tby relay.example.net; Mon, 23 Nov 2026 11:04:05 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.com\r\n"
    "Subject: quarterly report\r\n"
    "\r\n"
    "SECRET BODY LINE\r\n"
    "--=_mailferry_dsn_0G1ABCDEFGHJKM\r\n";

DsnInput typical() {
  DsnInput in;
  in.reporting_host = "relay.example.net";
  in.queue_id = "0G1ABCDEFGHJKM";
  in.arrival = at(1795431845);   // Mon, 23 Nov 2026 11:04:05 UTC
  in.now = at(1795435445);       // an hour later
  in.original_sender = "alice@example.org";
  in.failed = {{"bob@example.com", "550 5.1.1 <bob@example.com>: No such user", false}};
  in.original_message = original;
  in.boundary_seed = "0G1ABCDEFGHJKM";
  return in;
}

std::vector<std::string> lines_of(const std::string& msg) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < msg.size()) {
    const std::size_t end = msg.find("\r\n", start);
    REQUIRE(end != std::string::npos);   // every line ends in CRLF
    lines.push_back(msg.substr(start, end - start));
    start = end + 2;
  }
  return lines;
}

std::string top_header(const std::string& msg) { return msg.substr(0, msg.find("\r\n\r\n") + 2); }

std::string boundary_of(const std::string& msg) {
  const auto b = msg.find("boundary=\"");
  REQUIRE(b != std::string::npos);
  const auto start = b + 10;
  return msg.substr(start, msg.find('"', start) - start);
}

// The parts between the delimiters, each with its own header.
std::vector<std::string> parts_of(const std::string& msg) {
  const std::string delim = "\r\n--" + boundary_of(msg);
  std::vector<std::string> parts;
  std::size_t pos = msg.find(delim + "\r\n");
  REQUIRE(pos != std::string::npos);
  while (true) {
    const std::size_t start = pos + delim.size() + 2;
    const std::size_t next = msg.find(delim, start);
    REQUIRE(next != std::string::npos);
    parts.push_back(msg.substr(start, next - start));
    if (msg.compare(next + delim.size(), 4, "--\r\n") == 0) {
      CHECK(next + delim.size() + 4 == msg.size());
      break;
    }
    pos = next;
  }
  return parts;
}

void check_lines(const std::string& msg) {
  CHECK(msg.find('\0') == std::string::npos);
  for (const std::string& line : lines_of(msg)) {
    CAPTURE(line);
    CHECK(line.size() <= 998);
    CHECK(line.find('\r') == std::string::npos);
    CHECK(line.find('\n') == std::string::npos);
  }
}

}  // namespace

TEST_CASE("DSN top-level header and multipart/report structure", "[dsn]") {
  const std::string msg = build_dsn(typical());
  check_lines(msg);
  const std::string head = top_header(msg);
  CHECK(head.rfind("From: Mail Delivery System <MAILER-DAEMON@relay.example.net>\r\n", 0) == 0);
  CHECK(head.find("\r\nTo: <alice@example.org>\r\n") != std::string::npos);
  CHECK(head.find("\r\nSubject: Undelivered Mail Returned to Sender\r\n") != std::string::npos);
  CHECK(head.find("\r\nDate: Mon, 23 Nov 2026 12:04:05 +0000\r\n") != std::string::npos);
  CHECK(head.find("\r\nMessage-ID: <0G1ABCDEFGHJKM.dsn@relay.example.net>\r\n") != std::string::npos);
  CHECK(head.find("\r\nAuto-Submitted: auto-replied\r\n") != std::string::npos);
  CHECK(head.find("\r\nMIME-Version: 1.0\r\n") != std::string::npos);
  CHECK(head.find("\r\nContent-Type: multipart/report; report-type=delivery-status;") != std::string::npos);

  const std::string b = boundary_of(msg);
  CHECK(!b.empty());
  CHECK(b.size() <= 70);   // RFC 2046 §5.1.1
  const auto parts = parts_of(msg);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].find("Content-Type: text/plain") != std::string::npos);
  CHECK(parts[1].find("Content-Type: message/delivery-status\r\n") != std::string::npos);
  CHECK(parts[2].find("Content-Type: text/rfc822-headers\r\n") != std::string::npos);

  const std::string& report = parts[1];
  CHECK(report.find("\r\n\r\nReporting-MTA: dns; relay.example.net\r\n") != std::string::npos);
  CHECK(report.find("\r\nX-Mailferry-Queue-ID: 0G1ABCDEFGHJKM\r\n") != std::string::npos);
  CHECK(report.find("\r\nArrival-Date: Mon, 23 Nov 2026 11:04:05 +0000\r\n") != std::string::npos);
  CHECK(report.find("\r\n\r\nFinal-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: No such user\r\n") != std::string::npos);
  CHECK(parts[0].find("bob@example.com") != std::string::npos);
  CHECK(parts[0].find("No such user") != std::string::npos);
}

TEST_CASE("DSN: one recipient block per failed recipient", "[dsn]") {
  DsnInput in = typical();
  in.failed.push_back({"carol@example.com", "552 5.2.2 Mailbox full", false});
  const auto parts = parts_of(build_dsn(in));
  REQUIRE(parts.size() == 3);
  CHECK(parts[1].find("Final-Recipient: rfc822; bob@example.com\r\n") != std::string::npos);
  CHECK(parts[1].find("Final-Recipient: rfc822; carol@example.com\r\nAction: failed\r\nStatus: 5.2.2\r\n") !=
        std::string::npos);
  CHECK(parts[0].find("carol@example.com") != std::string::npos);
}

TEST_CASE("DSN Status comes from the diagnostic's enhanced code", "[dsn]") {
  auto [diagnostic, status] = GENERATE(table<std::string, std::string>({
      {"550 5.1.1 No such user", "5.1.1"},
      {"550-5.7.1 Relaying denied", "5.7.1"},
      {"554 5.7.509 Access denied, DMARC", "5.7.509"},
      {"552 5.3.4 Message too big", "5.3.4"},
      {"  550 5.1.10 padded", "5.1.10"},
      {"5.2.1 bare code first", "5.2.1"},
      {"550 No enhanced code", "5.0.0"},
      {"550 4.2.0 class disagrees with the reply", "5.0.0"},
      {"550 5.1 incomplete", "5.0.0"},
      {"550 5.1.1234 too many digits", "5.0.0"},
      {"550 5.1.1.1 too many parts", "5.0.0"},
      {"550 user 5.1.1 later in the text", "5.0.0"},
      {"connection refused", "5.0.0"},
      {"", "5.0.0"},
  }));
  CAPTURE(diagnostic);
  CHECK(dsn_status({"bob@example.com", diagnostic, false}) == status);
  DsnInput in = typical();
  in.failed = {{"bob@example.com", diagnostic, false}};
  CHECK(parts_of(build_dsn(in))[1].find("\r\nStatus: " + status + "\r\n") != std::string::npos);
}

TEST_CASE("DSN for max_age expiry: 4.4.7 and says so", "[dsn]") {
  DsnInput in = typical();
  in.failed = {{"bob@example.com", "451 4.3.0 Try again later", true},
               {"dave@example.com", "connect to smtp.example.com port 587: timed out", true}};
  const std::string msg = build_dsn(in);
  check_lines(msg);
  const auto parts = parts_of(msg);
  REQUIRE(parts.size() == 3);
  CHECK(parts[1].find("Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 4.4.7\r\n"
                      "Diagnostic-Code: smtp; 451 4.3.0 Try again later\r\n") != std::string::npos);
  // Not an SMTP reply, so not of RFC 3464's "smtp" type.
  CHECK(parts[1].find("Status: 4.4.7\r\nDiagnostic-Code: X-Mailferry; connect to smtp.example.com") !=
        std::string::npos);
  CHECK(parts[1].find("Status: 5.") == std::string::npos);
  CHECK(parts[0].find("max_age") != std::string::npos);
  CHECK(parts[0].find("Try again later") != std::string::npos);
  CHECK(dsn_status({"x@example.com", "550 5.1.1 No such user", true}) == "4.4.7");
}

TEST_CASE("DSN includes the original header section and not the body", "[dsn]") {
  const std::string msg = build_dsn(typical());
  const auto parts = parts_of(msg);
  REQUIRE(parts.size() == 3);
  const std::string& headers = parts[2];
  CHECK(headers.find("\r\n\r\nReceived: from client.example.org\r\n\tby relay.example.net;") != std::string::npos);
  CHECK(headers.find("\r\nSubject: quarterly report\r\n") != std::string::npos);
  CHECK(msg.find("SECRET BODY LINE") == std::string::npos);
}

TEST_CASE("DSN boundary never occurs in the content", "[dsn]") {
  DsnInput in = typical();
  const std::string hostile =
      "X-Trap: =_mailferry_dsn_0G1ABCDEFGHJKM\r\n"
      "--=_mailferry_dsn_0G1ABCDEFGHJKM: looks like a delimiter\r\n"
      "Subject: hi\r\n\r\nbody\r\n";
  in.original_message = hostile;
  in.failed = {{"bob@example.com", "550 5.1.1 --=_mailferry_dsn_0G1ABCDEFGHJKM.1", false}};
  const std::string msg = build_dsn(in);
  check_lines(msg);
  const std::string b = boundary_of(msg);
  CHECK(b.size() <= 70);
  const auto parts = parts_of(msg);
  REQUIRE(parts.size() == 3);
  for (const auto& p : parts) CHECK(p.find(b) == std::string::npos);
  CHECK(parts[2].find("X-Trap: =_mailferry_dsn_0G1ABCDEFGHJKM\r\n") != std::string::npos);
}

TEST_CASE("DSN: a diagnostic or address cannot inject a header line", "[dsn]") {
  DsnInput in = typical();
  in.original_sender = "alice@example.org>\r\nBcc: victim@example.net";
  in.failed = {{"bob@example.com\r\nBcc: y@example.net", "550 5.1.1 No such user\r\nBcc: x@example.net\r\n\r\nfake body", false},
               {"carol@example.com", "550 5.7.1 a\nStatus: 2.0.0\rAction: delivered", false}};
  in.reporting_host = "relay.example.net\r\nBcc: z@example.net";
  in.queue_id = "ID\r\nBcc: q@example.net";
  const std::string msg = build_dsn(in);
  check_lines(msg);
  for (const std::string& line : lines_of(msg)) {
    CAPTURE(line);
    CHECK(line.rfind("Bcc:", 0) != 0);
    CHECK(line.rfind("Status: 2", 0) != 0);
    CHECK(line.rfind("Action: delivered", 0) != 0);
    CHECK(line.rfind("fake body", 0) != 0);
  }
  const auto parts = parts_of(msg);
  REQUIRE(parts.size() == 3);
  CHECK(parts[1].find("Diagnostic-Code: smtp; 550 5.1.1 No such user Bcc: x@example.net fake body\r\n") !=
        std::string::npos);
  CHECK(parts[1].find("Status: 5.7.1\r\n") != std::string::npos);
  CHECK(top_header(msg).find("\r\nTo: <alice@example.org? Bcc: victim@example.net>\r\n") != std::string::npos);
}

TEST_CASE("DSN folds and limits long lines", "[dsn]") {
  DsnInput in = typical();
  std::string words;
  for (int i = 0; i < 200; ++i) words += " word" + std::to_string(i);
  const std::string long_token(5000, 'x');
  in.failed = {{"bob@example.com", "550 5.1.1" + words, false},
               {std::string(3000, 'a') + "@example.com", "550 5.1.1 " + long_token, false}};
  const std::string long_header = "X-Long: " + std::string(3000, 'h') + "\r\n";
  const std::string message = long_header + "Subject: x\nX-Bare-LF: y\r\n\r\nbody\r\n";
  in.original_message = message;
  const std::string msg = build_dsn(in);
  check_lines(msg);
  const auto parts = parts_of(msg);
  REQUIRE(parts.size() == 3);
  // Folded where there is white space: the word-list diagnostic stays under 78 columns per line.
  const auto diag = parts[1].find("Diagnostic-Code: smtp; 550 5.1.1 word0");
  REQUIRE(diag != std::string::npos);
  CHECK(parts[1].find("\r\n", diag) - diag <= 78);
  CHECK(parts[1].find("\r\n word", diag) != std::string::npos);
  CHECK(parts[1].find("...") != std::string::npos);   // the 5000-octet token was cut
  // Bare LF in the original header repaired, long line continued.
  CHECK(parts[2].find("\r\nSubject: x\r\nX-Bare-LF: y\r\n") != std::string::npos);
  CHECK(parts[2].find("X-Long: hhh") != std::string::npos);
}

TEST_CASE("DSN of a message without a header section", "[dsn]") {
  DsnInput in = typical();
  in.original_message = "just a body line without a colon\r\n";
  const std::string msg = build_dsn(in);
  check_lines(msg);
  const auto parts = parts_of(msg);
  REQUIRE(parts.size() == 3);
  CHECK(msg.find("just a body line") == std::string::npos);
}
