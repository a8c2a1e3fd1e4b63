#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mailferry/message/header_scan.hpp"

using namespace mailferry::message;

TEST_CASE("scan_headers finds Date, Message-ID and From case-insensitively", "[message][header_scan]") {
  const std::string m =
      "Received: from x\r\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
      "FROM: a@example.com\r\n"
      "message-id: <1@x>\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "Date: in the body does not count\r\n";
  const HeaderInfo h = scan_headers(m);
  CHECK(h.has_from);
  CHECK(h.has_message_id);
  CHECK_FALSE(h.has_date);
  CHECK(h.header_end == m.find("\r\n\r\n") + 2);
  CHECK(h.blank_line);
}

TEST_CASE("scan_headers: where the header ends", "[message][header_scan]") {
  struct Case {
    std::string message;
    std::size_t end;
    bool blank;
    bool date;
  };
  const auto c = GENERATE(values<Case>({
      {"Date: x\r\n\r\nbody\r\n", 9, true, true},
      {"Date: x\n\nbody\n", 8, true, true},                        // bare LF
      {"\r\nDate: x\r\n", 0, true, false},                         // no header at all
      {"Date: x\r\nSubject: y\r\n", 21, false, true},              // no body, no blank line
      {"Date: x", 7, false, true},                                 // not even a final line ending
      {"", 0, false, false},
      {"hello world\r\nDate: x\r\n", 0, false, false},             // starts with its body
      {"Subject: a\r\nnot a header\r\n", 12, false, false},        // Postfix: body starts here
      {" folded nothing\r\n", 0, false, false},
      {"Subject: a\r\n b\r\n\tc\r\nDate: x\r\n\r\n", 29, true, true},
      {"Da te: x\r\n\r\n", 0, false, false},                       // space inside a name
      {"Date : obsolete\r\n\r\n", 17, true, true},                 // RFC 5322 §4.5.3
      {": no name\r\n", 0, false, false},
  }));
  CAPTURE(c.message);
  const HeaderInfo h = scan_headers(c.message);
  CHECK(h.header_end == c.end);
  CHECK(h.blank_line == c.blank);
  CHECK(h.has_date == c.date);
}

TEST_CASE("header_value unfolds the first matching field", "[message][header_scan]") {
  const std::string m =
      "Subject: first\r\n  line two\r\n\tthree \r\n"
      "To: a@example.com,\r\n b@example.com\r\n"
      "subject: second\r\n"
      "Empty:\r\n"
      "\r\n"
      "X-Body: no\r\n";
  CHECK(header_value(m, "SUBJECT") == "first  line two\tthree");
  CHECK(header_value(m, "to") == "a@example.com, b@example.com");
  CHECK(header_value(m, "Empty") == "");
  CHECK_FALSE(header_value(m, "X-Body"));
  CHECK_FALSE(header_value(m, "Cc"));
  CHECK(header_value("To: x@y\nCc: z@w\n", "cc") == "z@w");
}

TEST_CASE("extract_addresses handles the forms found in To/Cc/Bcc", "[message][header_scan]") {
  using V = std::vector<std::string>;
  auto [value, expected] = GENERATE(table<std::string, V>({
      {"a@example.com", {"a@example.com"}},
      {"  a@example.com  ", {"a@example.com"}},
      {"Alice <a@example.com>", {"a@example.com"}},
      {"a@example.com, Bob <b@example.org>,c@example.net", {"a@example.com", "b@example.org", "c@example.net"}},
      {"\"Doe, John\" <j@example.com>, \"x<y>\" <k@example.com>", {"j@example.com", "k@example.com"}},
      {"\"quoted \\\" comma, here\" <q@example.com>", {"q@example.com"}},
      {"undisclosed-recipients:;", {}},
      {"team: a@example.com, Bob <b@example.org>; c@example.net", {"a@example.com", "b@example.org", "c@example.net"}},
      {"a@example.com (Alice, the (nested) one), b@example.org", {"a@example.com", "b@example.org"}},
      {"\"john doe\"@example.com", {"\"john doe\"@example.com"}},
      {"root", {"root"}},
      {"root, www-data", {"root", "www-data"}},
      {"<@relay.example:a@example.com>", {"a@example.com"}},
      {"a @ example.com", {"a@example.com"}},
      {"Alice <a@example.com>,\r\n\tBob <b@example.com>", {"a@example.com", "b@example.com"}},
      {",,  ,", {}},
      {"", {}},
      {"\"Team: A\" <t@example.com>", {"t@example.com"}},
  }));
  CAPTURE(value);
  CHECK(extract_addresses(value) == expected);
}

TEST_CASE("header_values unfolds every matching field, in order", "[message][header_scan]") {
  const std::string m =
      "To: a@example.com\r\n"
      "Cc: c@example.com\r\n"
      "to: b@example.com,\r\n\tB2@example.com\r\n"
      "\r\n"
      "To: body@example.com\r\n";
  CHECK(header_values(m, "To") == std::vector<std::string>{"a@example.com", "b@example.com,\tB2@example.com"});
  CHECK(header_values(m, "Bcc").empty());
  CHECK(header_values("", "To").empty());
}
