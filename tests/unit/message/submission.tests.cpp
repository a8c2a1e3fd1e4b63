#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mailferry/message/sendmail_input.hpp"
#include "mailferry/message/submission.hpp"

using namespace mailferry;
using namespace mailferry::message;
using V = std::vector<std::string>;

namespace {

SendmailArgs args_of(std::vector<std::string> argv) {
  auto r = parse_sendmail_args(argv);
  REQUIRE(r.ok());
  return *r;
}

Submission submit(std::vector<std::string> argv, std::string message) {
  auto r = prepare_submission(args_of(std::move(argv)), std::move(message), "www-data", "web1.example.com");
  if (!r) FAIL(r.error().message);
  return std::move(r).value();
}

}  // namespace

TEST_CASE("-t: recipients from To/Cc/Bcc, Bcc folded over two lines removed", "[sendmail][message]") {
  const Submission s = submit({"-t", "-i"},
                              "From: App <app@example.com>\r\n"
                              "To: Alice <alice@example.com>, bob@example.org\r\n"
                              "Bcc: hidden@example.net,\r\n"
                              "\tSecret Person <secret@example.net>\r\n"
                              "Cc: carol@example.com\r\n"
                              "bcc : again@example.net\r\n"
                              "Subject: hi\r\n"
                              "\r\n"
                              "Bcc: in the body stays\r\n");
  CHECK(s.sender == "app@example.com");
  CHECK(s.recipients == V{"alice@example.com", "bob@example.org", "carol@example.com", "hidden@example.net",
                          "secret@example.net", "again@example.net"});
  CHECK(s.message ==
        "From: App <app@example.com>\r\n"
        "To: Alice <alice@example.com>, bob@example.org\r\n"
        "Cc: carol@example.com\r\n"
        "Subject: hi\r\n"
        "\r\n"
        "Bcc: in the body stays\r\n");
  CHECK_FALSE(s.smtputf8);
}

TEST_CASE("-t: groups, repeated fields, bare names, duplicates, command-line recipients", "[sendmail][message]") {
  auto [argv, headers, expected] = GENERATE(table<V, std::string, V>({
      {{"-t"}, "To: team: a@example.com, Bob <b@example.org>;\r\nCc: undisclosed-recipients:;\r\n", {"a@example.com", "b@example.org"}},
      {{"-t"}, "To: undisclosed-recipients:;\r\nBcc: x@example.com\r\n", {"x@example.com"}},
      {{"-t"}, "To: a@example.com\r\nTo: b@example.com\r\n", {"a@example.com", "b@example.com"}},
      {{"-t"}, "To: root\r\n", {"root@web1.example.com"}},
      {{"-t"}, "To: a@example.com, A@EXAMPLE.com, a@Example.COM\r\n", {"a@example.com", "A@EXAMPLE.com"}},
      {{"-t", "c@example.com"}, "To: a@example.com\r\n", {"c@example.com", "a@example.com"}},
      {{"c@example.com"}, "To: a@example.com\r\n", {"c@example.com"}},   // without -t, To: is not read
      {{"-t"}, "To: \"Doe, John\" <j@example.com>,\r\n  \"x\" <k@example.com>\r\n", {"j@example.com", "k@example.com"}},
  }));
  CAPTURE(argv, headers);
  CHECK(submit(argv, headers + "Subject: x\r\n\r\nbody\r\n").recipients == expected);
}

TEST_CASE("envelope sender and From:", "[sendmail][message]") {
  struct Case {
    const char* what;
    V argv;
    std::string headers;   // before "Subject: s\r\n\r\nb\r\n"
    std::string sender;
    std::string message;
  };
  const auto c = GENERATE(values<Case>({
      {"-f wins over From:", {"-f", "bounce@example.com", "x@example.com"}, "From: a@example.com\r\n",
       "bounce@example.com", "From: a@example.com\r\nSubject: s\r\n\r\nb\r\n"},
      {"From: gives the sender", {"x@example.com"}, "From: \"App\" <a@example.com>\r\n", "a@example.com",
       "From: \"App\" <a@example.com>\r\nSubject: s\r\n\r\nb\r\n"},
      {"From: with a bare name", {"x@example.com"}, "From: root\r\n", "root@web1.example.com",
       "From: root\r\nSubject: s\r\n\r\nb\r\n"},
      {"From: without an address", {"x@example.com"}, "From: nobody here <>\r\n", "www-data@web1.example.com",
       "From: nobody here <>\r\nSubject: s\r\n\r\nb\r\n"},
      {"no From: — the invoking user, and a From: added", {"x@example.com"}, "", "www-data@web1.example.com",
       "Subject: s\r\nFrom: www-data@web1.example.com\r\n\r\nb\r\n"},
      {"no From:, -f", {"-f", "a@example.com", "x@example.com"}, "", "a@example.com",
       "Subject: s\r\nFrom: a@example.com\r\n\r\nb\r\n"},
      {"cron: -F and no From:", {"-FCronDaemon", "-i", "root"}, "", "www-data@web1.example.com",
       "Subject: s\r\nFrom: CronDaemon <www-data@web1.example.com>\r\n\r\nb\r\n"},
      {"-F with a space", {"-F", "Cron Daemon", "-f", "root", "x@example.com"}, "", "root@web1.example.com",
       "Subject: s\r\nFrom: Cron Daemon <root@web1.example.com>\r\n\r\nb\r\n"},
      {"-F with specials is quoted", {"-F", "Doe, \"J\"", "x@example.com"}, "", "www-data@web1.example.com",
       "Subject: s\r\nFrom: \"Doe, \\\"J\\\"\" <www-data@web1.example.com>\r\n\r\nb\r\n"},
      {"-F cannot inject a field", {"-F", "Eve\r\nBcc: x@evil.example", "x@example.com"}, "",
       "www-data@web1.example.com",
       "Subject: s\r\nFrom: \"Eve  Bcc: x@evil.example\" <www-data@web1.example.com>\r\n\r\nb\r\n"},
      {"-F non-ASCII is RFC 2047 encoded", {"-F", "Jos\xc3\xa9", "x@example.com"}, "", "www-data@web1.example.com",
       "Subject: s\r\nFrom: =?UTF-8?B?Sm9zw6k=?= <www-data@web1.example.com>\r\n\r\nb\r\n"},
      {"-F with an existing From: changes nothing", {"-F", "Cron Daemon", "x@example.com"},
       "From: a@example.com\r\n", "a@example.com", "From: a@example.com\r\nSubject: s\r\n\r\nb\r\n"},
      {"null sender: From: names the user", {"-f", "<>", "x@example.com"}, "", "",
       "Subject: s\r\nFrom: www-data@web1.example.com\r\n\r\nb\r\n"},
  }));
  CAPTURE(c.what);
  const Submission s = submit(c.argv, c.headers + "Subject: s\r\n\r\nb\r\n");
  CHECK(s.sender == c.sender);
  CHECK(s.message == c.message);
}

TEST_CASE("From: added to messages with odd header sections", "[sendmail][message]") {
  auto [message, expected] = GENERATE(table<std::string, std::string>({
      {"", "From: www-data@web1.example.com\r\n"},
      {"just a body\r\n", "From: www-data@web1.example.com\r\n\r\njust a body\r\n"},
      {"\r\nbody\r\n", "From: www-data@web1.example.com\r\n\r\nbody\r\n"},
      {"Subject: only headers\r\n", "Subject: only headers\r\nFrom: www-data@web1.example.com\r\n"},
      {"Subject: no newline", "Subject: no newline\r\nFrom: www-data@web1.example.com\r\n"},
      {"Subject: a\r\nnot a header\r\n", "Subject: a\r\nFrom: www-data@web1.example.com\r\n\r\nnot a header\r\n"},
  }));
  CAPTURE(message);
  CHECK(submit({"x@example.com"}, message).message == expected);
}

TEST_CASE("Bcc goes even without -t, Resent-Bcc too; long and 8-bit fields survive", "[sendmail][message]") {
  const std::string long_subject = "Subject: " + std::string(5000, 'y') + "\r\n";
  const Submission s = submit({"a@example.com"},
                              "From: J\xc3\xb6rg <j@example.com>\r\n"
                              "Bcc: b@example.com\r\n" +
                                  long_subject +
                                  "Resent-Bcc: r@example.com,\r\n r2@example.com\r\n"
                                  "X-8bit: \xff\xfe\r\n"
                                  "\r\nbody\r\n");
  CHECK(s.recipients == V{"a@example.com"});
  CHECK(s.sender == "j@example.com");
  CHECK(s.message == "From: J\xc3\xb6rg <j@example.com>\r\n" + long_subject + "X-8bit: \xff\xfe\r\n\r\nbody\r\n");
}

TEST_CASE("submission errors and their exit codes", "[sendmail][message]") {
  auto [argv, message, error, code] = GENERATE(table<V, std::string, std::string, ExitCode>({
      {{"-i"}, "To: a@example.com\r\n\r\nb\r\n",
       "no recipients: name them on the command line, or pass -t to take them from To, Cc and Bcc", ExitCode::usage},
      {{"-t"}, "To: undisclosed-recipients:;\r\n\r\nb\r\n",
       "no recipients: name them on the command line, or pass -t to take them from To, Cc and Bcc", ExitCode::usage},
      {{"-t"}, "Subject: none\r\n\r\nb\r\n",
       "no recipients: name them on the command line, or pass -t to take them from To, Cc and Bcc", ExitCode::usage},
      {{"-t"}, "To: a@example.com, bad@@example.com\r\n\r\nb\r\n", "invalid recipient address \"bad@@example.com\"",
       ExitCode::data},
      {{"a@exa_mple.com"}, "", "invalid recipient address \"a@exa_mple.com\"", ExitCode::data},
      {{"-f", "not an address", "a@example.com"}, "", "invalid sender address \"not an address@web1.example.com\" (from -f)",
       ExitCode::data},
      {{"--", "-x@\x01"}, "", "invalid recipient address \"-x@?\"", ExitCode::data},
  }));
  CAPTURE(argv, message);
  const auto r = prepare_submission(args_of(argv), message, "www-data", "web1.example.com");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == error);
  CHECK(submission_exit_code(r.error()) == code);
}

TEST_CASE("no usable default sender", "[sendmail][message]") {
  const auto r = prepare_submission(args_of({"a@example.com"}), "", "www-data", "");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "cannot make a sender address from user \"www-data\" and host name \"\" (pass -f ADDRESS)");
  CHECK(submission_exit_code(r.error()) == ExitCode::data);
}

TEST_CASE("non-ASCII addresses are flagged for SMTPUTF8", "[sendmail][message]") {
  CHECK(submit({"j\xc3\xb6rg@example.com"}, "").smtputf8);
  CHECK(submit({"-f", "\xc3\xa9@example.com", "a@example.com"}, "").smtputf8);
  CHECK_FALSE(submit({"a@example.com"}, "").smtputf8);
}

TEST_CASE("Symfony Mailer -t: dot-stuffed stdin through to the submission", "[sendmail][message]") {
  const SendmailArgs args = args_of({"-t"});
  SendmailInput in(args.ignore_dots, 1 << 20);
  in.feed("From: shop@example.com\nTo: customer@example.org\nBcc: archive@example.com\nSubject: Order\n\n");
  in.feed("..the line started with a dot\n.\n");
  REQUIRE(in.finished());
  const auto r = prepare_submission(args, in.take(), "www-data", "web1.example.com");
  REQUIRE(r.ok());
  CHECK(r->sender == "shop@example.com");
  CHECK(r->recipients == V{"customer@example.org", "archive@example.com"});
  CHECK(r->message ==
        "From: shop@example.com\r\nTo: customer@example.org\r\nSubject: Order\r\n\r\n.the line started with a dot\r\n");
}
