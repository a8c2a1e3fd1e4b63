#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "mailferry/message/header_scan.hpp"
#include "mailferry/message/trace_headers.hpp"

using namespace mailferry::message;
using mailferry::WallTime;

namespace {

WallTime at(long long seconds) { return WallTime{} + std::chrono::seconds(seconds); }

const WallTime when = at(1795431845);   // Mon, 23 Nov 2026 11:04:05 UTC

ReceivedInfo typical() {
  ReceivedInfo r;
  r.helo = "client.example.org";
  r.client_address = "192.0.2.7";
  r.client_rdns_or_empty = "mail.example.org";
  r.by_host = "relay.example.net";
  r.protocol = "ESMTPSA";
  r.queue_id = "0G1ABCDEFGHJKM";
  r.for_recipient = "bob@example.com";
  r.when = when;
  return r;
}

// Every line of a header field, without its CRLF, is at most 78 characters, and only the last
// CRLF is not followed by white space.
void check_folding(const std::string& field) {
  REQUIRE(field.size() >= 2);
  REQUIRE(field.substr(field.size() - 2) == "\r\n");
  std::size_t start = 0;
  while (start < field.size()) {
    const std::size_t end = field.find("\r\n", start);
    REQUIRE(end != std::string::npos);
    CHECK(end - start <= 78);
    if (end + 2 < field.size()) CHECK(field[end + 2] == '\t');
    start = end + 2;
  }
  for (char c : field) {
    const auto u = static_cast<unsigned char>(c);
    CHECK((u >= 0x20 || c == '\r' || c == '\n' || c == '\t'));
  }
}

}  // namespace

TEST_CASE("rfc5322_date is UTC with English names", "[message][trace_headers]") {
  CHECK(rfc5322_date(when) == "Mon, 23 Nov 2026 11:04:05 +0000");
  CHECK(rfc5322_date(at(1709251199)) == "Thu, 29 Feb 2024 23:59:59 +0000");
  CHECK(rfc5322_date(at(946857600)) == "Mon, 3 Jan 2000 00:00:00 +0000");
  CHECK(rfc5322_date(at(0)) == "Thu, 1 Jan 1970 00:00:00 +0000");
  CHECK(rfc5322_date(WallTime{} - std::chrono::milliseconds(500)) == "Wed, 31 Dec 1969 23:59:59 +0000");
  CHECK(rfc5322_date(when + std::chrono::milliseconds(999)) == "Mon, 23 Nov 2026 11:04:05 +0000");
  CHECK(date_header(when) == "Date: Mon, 23 Nov 2026 11:04:05 +0000\r\n");
}

TEST_CASE("message_id_header", "[message][trace_headers]") {
  CHECK(message_id_header("0G1ABCDEFGHJKM", "relay.example.net") == "Message-ID: <0G1ABCDEFGHJKM@relay.example.net>\r\n");
  CHECK(message_id_header("X", "") == "Message-ID: <X@localhost>\r\n");
}

TEST_CASE("received_header: the RFC 5321 §4.4 layout", "[message][trace_headers]") {
  const std::string h = received_header(typical());
  CHECK(h ==
        "Received: from client.example.org (mail.example.org [192.0.2.7])\r\n"
        "\tby relay.example.net (mailferry) with ESMTPSA id 0G1ABCDEFGHJKM\r\n"
        "\tfor <bob@example.com>; Mon, 23 Nov 2026 11:04:05 +0000\r\n");
  check_folding(h);
}

TEST_CASE("received_header variants", "[message][trace_headers]") {
  ReceivedInfo r = typical();
  r.client_rdns_or_empty = "";
  r.client_address = "2001:db8::7";
  r.for_recipient = "";
  CHECK(received_header(r) ==
        "Received: from client.example.org (unknown [IPv6:2001:db8::7])\r\n"
        "\tby relay.example.net (mailferry) with ESMTPSA id 0G1ABCDEFGHJKM;\r\n"
        "\tMon, 23 Nov 2026 11:04:05 +0000\r\n");

  ReceivedInfo local;
  local.by_host = "relay.example.net";
  local.protocol = "local";
  local.queue_id = "0G1ABCDEFGHJKM";
  local.for_recipient = "root@relay.example.net";
  local.when = when;
  CHECK(received_header(local) ==
        "Received: by relay.example.net (mailferry) with local id 0G1ABCDEFGHJKM\r\n"
        "\tfor <root@relay.example.net>; Mon, 23 Nov 2026 11:04:05 +0000\r\n");

  r = typical();
  r.helo = "[192.0.2.7]";   // an address literal is a valid HELO and keeps its brackets
  CHECK(received_header(r).rfind("Received: from [192.0.2.7] (mail.example.org [192.0.2.7])\r\n", 0) == 0);
}

TEST_CASE("received_header lets no control byte or comment delimiter through from the client", "[message][trace_headers]") {
  ReceivedInfo r = typical();
  r.helo = "evil\r\nX-Injected: yes (x)\x01\xff";
  r.client_rdns_or_empty = "a)b\nc";
  r.for_recipient = "x>\r\ny@example.com";
  const std::string h = received_header(r);
  CHECK(h.rfind("Received: from evil??X-Injected:?yes??x??? (a?b?c [192.0.2.7])\r\n", 0) == 0);
  CHECK(h.find("for <x???y@example.com>;") != std::string::npos);
  check_folding(h);
}

TEST_CASE("received_header folds long parts under 78 characters", "[message][trace_headers]") {
  const std::size_t length = GENERATE(range<std::size_t>(1, 120, 7));
  CAPTURE(length);
  ReceivedInfo r = typical();
  r.helo = std::string(length, 'h');
  r.client_rdns_or_empty = std::string(length / 2 + 1, 'r');
  r.for_recipient = std::string(length / 3 + 1, 'u') + "@example.com";
  const std::string h = received_header(r);
  // A word longer than a line cannot be folded; everything else must fit.
  if (length + 11 <= 78 && length / 2 + 16 <= 78) check_folding(h);
  CHECK(h.find(r.helo) != std::string::npos);
  // The date may move to its own line, folded after the "for" clause's ';'.
  const std::string tail = "Mon, 23 Nov 2026 11:04:05 +0000\r\n";
  REQUIRE(h.size() > tail.size() + 2);
  CHECK(h.substr(h.size() - tail.size()) == tail);
  const std::string before = h.substr(0, h.size() - tail.size());
  CHECK((before.ends_with(">; ") || before.ends_with(">;\r\n\t")));
}

TEST_CASE("add_missing_headers appends only what is missing to the header section", "[message][trace_headers]") {
  const std::string date = "Date: Mon, 23 Nov 2026 11:04:05 +0000\r\n";
  const std::string id = "Message-ID: <Q1@relay.example.net>\r\n";
  auto add = [&](const std::string& m) { return add_missing_headers(m, scan_headers(m), when, "Q1", "relay.example.net"); };

  const std::string complete = "Date: x\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n";
  CHECK(add(complete) == complete);
  // The Received: that the listener wrote first stays on top.
  CHECK(add("Received: from x\r\nSubject: s\r\n\r\nbody\r\n") ==
        "Received: from x\r\nSubject: s\r\n" + date + id + "\r\nbody\r\n");
  CHECK(add("Subject: s\r\n\r\nbody\r\n") == "Subject: s\r\n" + date + id + "\r\nbody\r\n");
  CHECK(add("date: x\r\n\r\nbody\r\n") == "date: x\r\n" + id + "\r\nbody\r\n");
  CHECK(add("message-id: <a@b>\r\n\r\n") == "message-id: <a@b>\r\n" + date + "\r\n");
  CHECK(add("\r\nbody only\r\n") == date + id + "\r\nbody only\r\n");
  CHECK(add("") == date + id);
  CHECK(add("Subject: no body\r\n") == "Subject: no body\r\n" + date + id);
  // The header ends at a body line: a blank line goes in so the body stays the body.
  CHECK(add("hello world\r\n") == date + id + "\r\nhello world\r\n");
  CHECK(add("Subject: a\r\nnot a header\r\n") == "Subject: a\r\n" + date + id + "\r\nnot a header\r\n");
  // Nothing missing: the message is left byte for byte as it came.
  CHECK(add("Date: x\r\nMessage-ID: <a@b>\r\nnot a header\r\n") ==
        "Date: x\r\nMessage-ID: <a@b>\r\nnot a header\r\n");
}
