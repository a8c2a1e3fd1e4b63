// Transcript tests for ClientSession: a scripted server drives the machine, and every server input is
// fed whole, byte by byte, and split at every position — the three runs must agree exactly.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <variant>
#include <vector>

#include "mailferry/smtp/client_session.hpp"

using namespace std::chrono_literals;
using mailferry::TimePoint;
using namespace mailferry::smtp;

namespace {

const TimePoint t0 = TimePoint{} + 1000h;   // a fixed base: no clock is read, nothing sleeps

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

struct Quit {};
using Job = std::variant<OutgoingMessage, Quit>;   // what the "scheduler" does on each Ready
enum class End { none, eof, timeout };

// One command per reply: the transcripts up to the PIPELINING section script that dialogue, though
// ehlo_ok advertises PIPELINING. The pipelined tests turn it back on (pipelined()).
ClientPolicy policy() {
  ClientPolicy p;
  p.ehlo_name = "relay.example.net";
  p.max_reply_line = 512;
  p.max_reply_lines = 20;
  p.pipelining = false;
  return p;
}

// What the "shell" does on a StartTls action: the handshake succeeds (the next server input is what
// the server says inside TLS), fails, or is still running when the next bytes arrive.
enum class Handshake { ok, fail, pending };

struct Script {
  std::vector<std::string> server;   // each fed one second after the previous, once the client has acted
  std::vector<Job> jobs;
  End end = End::none;
  ClientPolicy client = policy();
  Handshake handshake = Handshake::ok;
};

enum class Feed { whole, bytewise, split };

struct Run {
  std::vector<std::string> log;
  std::vector<MessageResult> results;
  std::vector<client_action::Failed> failures;
  std::optional<Reply> last_reply;
};

std::string codes(const MessageResult& r) {
  std::string out = "done mail=" + (r.mail ? std::to_string(r.mail->code) : "-") + " rcpt=";
  for (std::size_t i = 0; i < r.rcpt.size(); ++i) out += (i ? "," : "") + std::to_string(r.rcpt[i].code);
  if (r.rcpt.empty()) out += "-";
  out += " data=" + (r.data ? std::to_string(r.data->code) : "-");
  return out;
}

std::string name(FailureClass c) {
  switch (c) {
    case FailureClass::connection: return "connection";
    case FailureClass::protocol: return "protocol";
    case FailureClass::reply: return "reply";
    case FailureClass::tls_unavailable: return "tls_unavailable";
    case FailureClass::tls: return "tls";
    case FailureClass::auth_rejected: return "auth_rejected";
  }
  return "?";
}

Run run(const Script& script, Feed feed, std::size_t split_at = 0) {
  ClientSession session(script.client);
  Run out;
  std::size_t next_job = 0;
  TimePoint now = t0;
  auto drain = [&] {
    while (auto action = session.poll_action()) {
      std::visit(overloaded{
                     [&](client_action::Send& s) { out.log.push_back("C: " + s.bytes); },
                     [&](client_action::MessageDone& d) {
                       out.log.push_back(codes(d.result));
                       out.results.push_back(d.result);
                     },
                     [&](client_action::Ready&) {
                       out.log.push_back("ready");
                       if (next_job >= script.jobs.size()) return;
                       const Job& job = script.jobs[next_job++];
                       if (const auto* m = std::get_if<OutgoingMessage>(&job)) {
                         session.send_message(*m, now);
                       } else {
                         session.quit(now);
                       }
                     },
                     [&](client_action::Failed& f) {
                       out.log.push_back("failed " + name(f.cls) + ": " + f.detail);
                       out.failures.push_back(f);
                     },
                     [&](client_action::Close&) { out.log.push_back("close"); },
                     [&](client_action::StartTls&) {
                       out.log.push_back("starttls");
                       switch (script.handshake) {
                         case Handshake::ok: session.handle_tls_established(now); break;
                         case Handshake::fail:
                           session.handle_tls_failed("certificate verify failed: unknown CA", now);
                           break;
                         case Handshake::pending: break;
                       }
                     },
                 },
                 *action);
    }
  };
  auto give = [&](std::string_view bytes) {
    session.handle_bytes(std::span<const char>(bytes.data(), bytes.size()), now);
    drain();
  };

  session.handle_connected(now);
  drain();
  for (const std::string& input : script.server) {
    now += 1s;
    switch (feed) {
      case Feed::whole: give(input); break;
      case Feed::bytewise:
        for (char c : input) give(std::string_view(&c, 1));
        break;
      case Feed::split: {
        const std::size_t k = std::min(split_at, input.size());
        give(std::string_view(input).substr(0, k));
        give(std::string_view(input).substr(k));
        break;
      }
    }
  }
  switch (script.end) {
    case End::none: break;
    case End::eof:
      session.handle_eof(now);
      drain();
      break;
    case End::timeout: {
      const auto deadline = session.poll_deadline();
      if (!deadline) {
        out.log.push_back("no deadline");
        break;
      }
      out.log.push_back("timer +" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*deadline - now).count()) + "s");
      session.handle_timeout(*deadline - 1ms);   // early: must change nothing
      drain();
      session.handle_timeout(*deadline);
      drain();
      break;
    }
  }
  out.last_reply = session.last_reply();
  return out;
}

// Runs the script the three ways and requires identical outcomes; returns the outcome.
Run check(const Script& script) {
  Run whole = run(script, Feed::whole);
  REQUIRE(run(script, Feed::bytewise).log == whole.log);
  std::size_t longest = 0;
  for (const auto& s : script.server) longest = std::max(longest, s.size());
  for (std::size_t k = 0; k <= longest; ++k) {
    CAPTURE(k);
    REQUIRE(run(script, Feed::split, k).log == whole.log);
  }
  return whole;
}

OutgoingMessage message(std::vector<std::string> rcpts = {"bob@example.org"},
                        std::string data = "Subject: hi\r\n\r\nhello\r\n") {
  OutgoingMessage m;
  m.sender = "alice@example.com";
  m.recipients = std::move(rcpts);
  m.data = std::move(data);
  return m;
}

const std::string greeting = "220 mx.example.org ESMTP ready\r\n";
const std::string ehlo_ok =
    "250-mx.example.org Hello relay.example.net\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n";
const std::string ehlo_bare = "250 mx.example.org\r\n";
const std::string mail_ok = "250 2.1.0 Sender ok\r\n";
const std::string rcpt_ok = "250 2.1.5 Recipient ok\r\n";
const std::string go_ahead = "354 End data with <CR><LF>.<CR><LF>\r\n";
const std::string queued = "250 2.0.0 Ok: queued as 4F2A\r\n";
const std::string rset_ok = "250 2.0.0 Ok\r\n";
const std::string bye = "221 2.0.0 Bye\r\n";

const std::string c_ehlo = "C: EHLO relay.example.net\r\n";
const std::string c_mail = "C: MAIL FROM:<alice@example.com> SIZE=22\r\n";   // 13 + 2 + 7 bytes of data
const std::string c_rcpt = "C: RCPT TO:<bob@example.org>\r\n";
const std::string c_data = "C: DATA\r\n";
const std::string c_body = "C: Subject: hi\r\n\r\nhello\r\n.\r\n";

using Log = std::vector<std::string>;

}  // namespace

TEST_CASE("happy path: greeting, EHLO, one message, QUIT", "[smtp][client_session]") {
  const Run r = check({{greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, queued, bye}, {message(), Quit{}}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, c_rcpt, c_data, c_body, "done mail=250 rcpt=250 data=250", "ready",
                     "C: QUIT\r\n", "close"});
  REQUIRE(r.results.size() == 1);
  CHECK(r.results[0].data->enhanced == "2.0.0");
  CHECK(r.results[0].data->lines == std::vector<std::string>{"Ok: queued as 4F2A"});
}

TEST_CASE("extensions are collected upper-cased and answer has_extension", "[smtp][client_session]") {
  ClientSession s(policy());
  s.handle_connected(t0);
  const std::string in = greeting + "250-mx Hello\r\n250-pipelining\r\n250-Size 1000\r\n250 auth=login plain\r\n";
  s.handle_bytes(std::span<const char>(in.data(), in.size()), t0);
  CHECK(s.state() == ClientState::ready);
  CHECK(s.extensions() == std::vector<std::string>{"PIPELINING", "SIZE 1000", "AUTH=LOGIN PLAIN"});
  CHECK(s.has_extension("size"));
  CHECK(s.has_extension("AUTH"));
  CHECK_FALSE(s.has_extension("SIZ"));
  CHECK_FALSE(s.has_extension("8BITMIME"));
  REQUIRE(s.last_reply());
  CHECK(s.last_reply()->code == 250);
  CHECK_FALSE(s.poll_deadline());   // idle: the shell bounds idle time itself
}

TEST_CASE("BODY=8BITMIME and SMTPUTF8 go out only when advertised and needed", "[smtp][client_session]") {
  OutgoingMessage m = message();
  m.body_8bit = true;
  m.smtputf8 = true;
  Run r = check({{greeting, ehlo_ok, mail_ok}, {m}});
  CHECK(r.log.at(2) == "C: MAIL FROM:<alice@example.com> SIZE=22 BODY=8BITMIME SMTPUTF8\r\n");

  m.smtputf8 = false;
  r = check({{greeting, "250-mx\r\n250 SIZE\r\n", mail_ok}, {m}});   // no 8BITMIME: body sent as is
  CHECK(r.log.at(2) == "C: MAIL FROM:<alice@example.com> SIZE=22\r\n");
}

TEST_CASE("EHLO refused with 500/501/502/504/550 falls back to HELO", "[smtp][client_session]") {
  const std::string refusal = GENERATE(as<std::string>{}, "502 5.5.2 Command not recognized\r\n", "500 what?\r\n",
                                       "501 5.5.4 syntax\r\n", "504 no\r\n", "550 not here\r\n");
  CAPTURE(refusal);
  const Run r = check({{greeting, refusal, "250 mx.example.org\r\n", mail_ok, rcpt_ok, go_ahead, queued},
                       {message()}});
  // After HELO there are no extensions: no SIZE parameter.
  CHECK(r.log == Log{c_ehlo, "C: HELO relay.example.net\r\n", "ready", "C: MAIL FROM:<alice@example.com>\r\n",
                     c_rcpt, c_data, c_body, "done mail=250 rcpt=250 data=250", "ready"});
}

TEST_CASE("a session refused at the greeting, EHLO or HELO fails with class reply", "[smtp][client_session]") {
  CHECK(check({{"554 5.7.1 go away\r\n"}, {}}).log ==
        Log{"failed reply: greeting refused the session: 554 5.7.1 go away", "close"});
  CHECK(check({{greeting, "554 5.7.1 blocked\r\n"}, {}}).log ==
        Log{c_ehlo, "failed reply: EHLO refused: 554 5.7.1 blocked", "close"});
  CHECK(check({{greeting, "451 4.3.0 later\r\n"}, {}}).log ==
        Log{c_ehlo, "failed reply: EHLO refused: 451 4.3.0 later", "close"});
  CHECK(check({{greeting, "502 no\r\n", "550 5.7.1 no\r\n"}, {}}).log ==
        Log{c_ehlo, "C: HELO relay.example.net\r\n", "failed reply: EHLO and HELO refused: 550 5.7.1 no", "close"});
}

TEST_CASE("something that is not SMTP is a protocol failure", "[smtp][client_session]") {
  CHECK(check({{"HTTP/1.1 400 Bad Request\r\n"}, {}}).log ==
        Log{"failed protocol: malformed reply: malformed reply line \"HTTP/1.1 400 Bad Request\"", "close"});
  CHECK(check({{"SSH-2.0-OpenSSH_9.2\r\n"}, {}}).log.at(0).rfind("failed protocol: malformed reply", 0) == 0);
  CHECK(check({{"250 hello\r\n"}, {}}).log ==
        Log{"failed protocol: unexpected reply while waiting for the greeting: 250 hello", "close"});
  // Garbage in the middle of a transaction: no MessageDone, so the message counts as undelivered.
  CHECK(check({{greeting, ehlo_ok, "250-ok\r\n251 mismatch\r\n"}, {message()}}).log ==
        Log{c_ehlo, "ready", c_mail,
            "failed protocol: malformed reply: reply code changed from 250 to 251 within one reply", "close"});
  CHECK(check({{greeting, ehlo_ok, "\x01\x02garbage\r\n"}, {message()}}).log.at(3).rfind("failed protocol", 0) == 0);
}

TEST_CASE("unexpected reply codes are protocol failures", "[smtp][client_session]") {
  CHECK(check({{greeting, ehlo_ok, "354 go ahead\r\n"}, {message()}}).log ==
        Log{c_ehlo, "ready", c_mail, "failed protocol: unexpected reply while waiting for the MAIL FROM reply: 354 go ahead",
            "close"});
  CHECK(check({{greeting, ehlo_ok, mail_ok, rcpt_ok, "250 ok\r\n"}, {message()}}).log.at(5) ==
        "failed protocol: unexpected reply while waiting for the DATA reply: 250 ok");
  CHECK(check({{greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, "354 again\r\n"}, {message()}}).log.at(6) ==
        "failed protocol: unexpected reply while waiting for the reply to the end of data: 354 again");
}

TEST_CASE("MAIL refused: MessageDone at once, then RSET", "[smtp][client_session]") {
  const Run r = check({{greeting, ehlo_ok, "451 4.3.0 Try again later\r\n", rset_ok, bye}, {message(), Quit{}}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, "done mail=451 rcpt=- data=-", "C: RSET\r\n", "ready", "C: QUIT\r\n",
                     "close"});
  CHECK(r.results.at(0).mail->summary() == "451 4.3.0 Try again later");
}

TEST_CASE("one RCPT refused, one accepted: DATA is still sent and both answers are kept", "[smtp][client_session]") {
  const Run r = check({{greeting, ehlo_ok, mail_ok, "550 5.1.1 No such user\r\n", rcpt_ok, go_ahead, queued},
                       {message({"nobody@example.org", "bob@example.org"})}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, "C: RCPT TO:<nobody@example.org>\r\n", c_rcpt, c_data, c_body,
                     "done mail=250 rcpt=550,250 data=250", "ready"});
  CHECK(r.results.at(0).rcpt.at(0).summary() == "550 5.1.1 No such user");
}

TEST_CASE("every RCPT refused: RSET instead of DATA", "[smtp][client_session]") {
  const Run r = check({{greeting, ehlo_ok, mail_ok, "550 5.1.1 No such user\r\n", "450 4.2.1 busy\r\n", rset_ok},
                       {message({"nobody@example.org", "bob@example.org"})}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, "C: RCPT TO:<nobody@example.org>\r\n", c_rcpt,
                     "done mail=250 rcpt=550,450 data=-", "C: RSET\r\n", "ready"});
}

TEST_CASE("DATA refused: MessageDone with the DATA reply, then RSET", "[smtp][client_session]") {
  const Run r = check({{greeting, ehlo_ok, mail_ok, rcpt_ok, "554 5.5.1 No valid recipients\r\n", rset_ok},
                       {message()}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, c_rcpt, c_data, "done mail=250 rcpt=250 data=554", "C: RSET\r\n",
                     "ready"});
}

TEST_CASE("final reply 452: MessageDone, no RSET needed", "[smtp][client_session]") {
  const Run r = check({{greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, "452 4.3.1 Insufficient storage\r\n"},
                       {message()}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, c_rcpt, c_data, c_body, "done mail=250 rcpt=250 data=452", "ready"});
}

TEST_CASE("RSET refused ends the session but the answers were already reported", "[smtp][client_session]") {
  const Run r = check({{greeting, ehlo_ok, "550 5.7.1 no\r\n", "502 no\r\n"}, {message()}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, "done mail=550 rcpt=- data=-", "C: RSET\r\n",
                     "failed reply: RSET refused: 502 no", "close"});
}

TEST_CASE("421 at any point fails the session with class reply", "[smtp][client_session]") {
  const std::string closing = "421 4.7.0 mx closing connection\r\n";
  const std::string detail = "failed reply: server closing the session: 421 4.7.0 mx closing connection";
  CHECK(check({{closing}, {}}).log == Log{detail, "close"});
  CHECK(check({{greeting, closing}, {}}).log == Log{c_ehlo, detail, "close"});
  // Mid-message: no MessageDone.
  CHECK(check({{greeting, ehlo_ok, mail_ok, closing}, {message()}}).log ==
        Log{c_ehlo, "ready", c_mail, c_rcpt, detail, "close"});
  CHECK(check({{greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, closing}, {message()}}).log ==
        Log{c_ehlo, "ready", c_mail, c_rcpt, c_data, c_body, detail, "close"});
  // While idle, too (an unsolicited 421 before the server hangs up).
  CHECK(check({{greeting, ehlo_bare, closing}, {}}).log == Log{c_ehlo, "ready", detail, "close"});
  // A reply to the failed session arriving with the 421 is ignored.
  CHECK(check({{greeting, ehlo_ok, closing + rcpt_ok}, {message()}}).log == Log{c_ehlo, "ready", c_mail, detail, "close"});
}

TEST_CASE("an unsolicited reply while idle is a protocol failure", "[smtp][client_session]") {
  CHECK(check({{greeting, ehlo_bare, "250 surprise\r\n"}, {}}).log ==
        Log{c_ehlo, "ready", "failed protocol: unsolicited reply while idle: 250 surprise", "close"});
}

TEST_CASE("EOF fails the session; mid-DATA the message gets no MessageDone", "[smtp][client_session]") {
  CHECK(check({{greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead}, {message()}, End::eof}).log ==
        Log{c_ehlo, "ready", c_mail, c_rcpt, c_data, c_body,
            "failed connection: connection closed by the server while waiting for the reply to the end of data",
            "close"});
  CHECK(check({{}, {}, End::eof}).log ==
        Log{"failed connection: connection closed by the server while waiting for the greeting", "close"});
  CHECK(check({{greeting, ehlo_bare}, {}, End::eof}).log ==
        Log{c_ehlo, "ready", "failed connection: connection closed by the server while waiting for the next command (idle)",
            "close"});
  // A partial reply does not count.
  CHECK(check({{greeting, ehlo_ok, "250-2.1.0 half\r\n"}, {message()}, End::eof}).log ==
        Log{c_ehlo, "ready", c_mail,
            "failed connection: connection closed by the server while waiting for the MAIL FROM reply", "close"});
}

TEST_CASE("a timeout at each stage fails the session with the stage's RFC 5321 timeout", "[smtp][client_session]") {
  const std::vector<std::string> all = {greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, queued};
  struct Stage {
    std::size_t inputs;
    const char* timer;
    const char* detail;
  };
  const auto stage = GENERATE(values<Stage>({
      {0, "timer +300s", "failed connection: timed out waiting for the greeting"},
      {1, "timer +300s", "failed connection: timed out waiting for the EHLO reply"},
      {2, "timer +300s", "failed connection: timed out waiting for the MAIL FROM reply"},
      {3, "timer +300s", "failed connection: timed out waiting for the RCPT TO reply"},
      {4, "timer +120s", "failed connection: timed out waiting for the DATA reply"},
      {5, "timer +600s", "failed connection: timed out waiting for the reply to the end of data"},
  }));
  CAPTURE(stage.inputs);
  const Script script{std::vector<std::string>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(stage.inputs)),
                      {message()}, End::timeout};
  const Run r = check(script);
  REQUIRE(r.log.size() >= 3);
  CHECK(r.log[r.log.size() - 3] == stage.timer);
  CHECK(r.log[r.log.size() - 2] == stage.detail);
  CHECK(r.log.back() == "close");
  CHECK(r.results.empty());
}

TEST_CASE("timeouts of RSET and QUIT", "[smtp][client_session]") {
  CHECK(check({{greeting, ehlo_ok, "550 no\r\n"}, {message()}, End::timeout}).log ==
        Log{c_ehlo, "ready", c_mail, "done mail=550 rcpt=- data=-", "C: RSET\r\n", "timer +300s",
            "failed connection: timed out waiting for the RSET reply", "close"});
  // Every message is reported before quit(): a silent QUIT is not a failure.
  CHECK(check({{greeting, ehlo_bare}, {Quit{}}, End::timeout}).log ==
        Log{c_ehlo, "ready", "C: QUIT\r\n", "timer +300s", "close"});
  CHECK(check({{greeting, ehlo_bare}, {Quit{}}, End::eof}).log == Log{c_ehlo, "ready", "C: QUIT\r\n", "close"});
  CHECK(check({{greeting, ehlo_bare, "500 what\r\n"}, {Quit{}}}).log == Log{c_ehlo, "ready", "C: QUIT\r\n", "close"});
}

TEST_CASE("deadlines come from the policy and handle_sent restarts them", "[smtp][client_session]") {
  ClientPolicy p = policy();
  p.greeting_timeout = 7s;
  p.command_timeout = 11s;
  p.data_init_timeout = 13s;
  p.data_end_timeout = 17s;
  ClientSession s(p);
  auto feed = [&](const std::string& in, TimePoint now) {
    s.handle_bytes(std::span<const char>(in.data(), in.size()), now);
  };
  auto drain = [&] {
    while (s.poll_action()) {
    }
  };
  CHECK_FALSE(s.poll_deadline());
  s.handle_connected(t0);
  CHECK(s.poll_deadline() == t0 + 7s);
  s.handle_timeout(t0 + 6s);   // early timer: ignored
  CHECK_FALSE(s.poll_action());
  feed(greeting, t0 + 1s);
  CHECK(s.poll_deadline() == t0 + 12s);
  s.handle_sent(t0 + 2s);
  CHECK(s.poll_deadline() == t0 + 13s);
  feed(ehlo_ok, t0 + 3s);
  drain();
  CHECK_FALSE(s.poll_deadline());
  s.send_message(message(), t0 + 3s);
  feed(mail_ok, t0 + 4s);
  feed(rcpt_ok, t0 + 5s);
  CHECK(s.poll_deadline() == t0 + 18s);
  feed(go_ahead, t0 + 6s);
  CHECK(s.state() == ClientState::data_body);
  CHECK(s.poll_deadline() == t0 + 23s);
  // A large body took a minute to write: the final reply is awaited from then on.
  s.handle_sent(t0 + 66s);
  CHECK(s.state() == ClientState::data_end);
  CHECK(s.poll_deadline() == t0 + 83s);
  s.handle_timeout(t0 + 70s);
  drain();
  CHECK(s.state() == ClientState::data_end);
  feed(queued, t0 + 80s);
  CHECK(s.state() == ClientState::ready);
}

TEST_CASE("dot-stuffing and line-ending normalisation of the data", "[smtp][client_session]") {
  auto [data, size, body] = GENERATE(table<std::string, int, std::string>({
      {".x\r\n", 4, "..x\r\n.\r\n"},
      {"..\r\n", 4, "...\r\n.\r\n"},
      {"a\r\n.\r\nb\r\n", 9, "a\r\n..\r\nb\r\n.\r\n"},   // "." alone cannot end the message
      {"a\r\n.", 6, "a\r\n..\r\n.\r\n"},
      {"no trailing newline", 21, "no trailing newline\r\n.\r\n"},
      {"a\nb\n", 6, "a\r\nb\r\n.\r\n"},                      // bare LF
      {"a\rb\r", 6, "a\r\nb\r\n.\r\n"},                      // bare CR
      {"a\n.\nb\n", 9, "a\r\n..\r\nb\r\n.\r\n"},             // smuggling attempt: LF.LF
      {"a\r\n.\r.\n.\r\nb", 15, "a\r\n..\r\n..\r\n..\r\nb\r\n.\r\n"},
      {"a\r\r\nb", 8, "a\r\n\r\nb\r\n.\r\n"},
      {"\r\n\r\n", 4, "\r\n\r\n.\r\n"},
      {"", 0, ".\r\n"},
      {"x.\r\n .\r\n", 8, "x.\r\n .\r\n.\r\n"},             // only a leading dot is doubled
  }));
  CAPTURE(data);
  const Run r = check({{greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, queued}, {message({"bob@example.org"}, data)}});
  CHECK(r.log.at(2) == "C: MAIL FROM:<alice@example.com> SIZE=" + std::to_string(size) + "\r\n");
  CHECK(r.log.at(5) == "C: " + body);
}

TEST_CASE("two messages on one session", "[smtp][client_session]") {
  OutgoingMessage second = message({"carol@example.org", "dave@example.org"}, "Subject: 2\r\n\r\nbye\r\n");
  second.sender = "";   // a bounce: null sender
  const Run r = check({{greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, queued, mail_ok, rcpt_ok,
                        "550 5.1.1 unknown\r\n", go_ahead, "250 2.0.0 Ok: queued as 77\r\n", bye},
                       {message(), second, Quit{}}});
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, c_rcpt, c_data, c_body, "done mail=250 rcpt=250 data=250", "ready",
                     "C: MAIL FROM:<> SIZE=19\r\n", "C: RCPT TO:<carol@example.org>\r\n",
                     "C: RCPT TO:<dave@example.org>\r\n", c_data, "C: Subject: 2\r\n\r\nbye\r\n.\r\n",
                     "done mail=250 rcpt=250,550 data=250", "ready", "C: QUIT\r\n", "close"});
  REQUIRE(r.results.size() == 2);
  CHECK(r.results[1].data->lines == std::vector<std::string>{"Ok: queued as 77"});
}

TEST_CASE("a message over the advertised SIZE is refused without being sent", "[smtp][client_session]") {
  const Run r = check({{greeting, "250-mx\r\n250 SIZE 21\r\n", mail_ok, rcpt_ok, go_ahead, queued},
                       {message(), message({"bob@example.org"}, "tiny\r\n")}});
  CHECK(r.log == Log{c_ehlo, "ready", "done mail=552 rcpt=- data=-", "ready", "C: MAIL FROM:<alice@example.com> SIZE=6\r\n",
                     c_rcpt, c_data, "C: tiny\r\n.\r\n", "done mail=250 rcpt=250 data=250", "ready"});
  CHECK(r.results.at(0).mail->summary() == "552 5.3.4 message size 22 exceeds the upstream's limit of 21 bytes");
  // Exactly at the limit is fine; "SIZE 0" declares no limit.
  CHECK(check({{greeting, "250-mx\r\n250 SIZE 22\r\n"}, {message()}}).log.at(2) == c_mail);
  CHECK(check({{greeting, "250-mx\r\n250 SIZE 0\r\n"}, {message()}}).log.at(2) == c_mail);
}

TEST_CASE("SMTPUTF8 needed but not advertised: synthetic 553 5.6.7, nothing sent", "[smtp][client_session]") {
  OutgoingMessage m = message({"jörg@example.de"});
  m.smtputf8 = true;
  const Run r = check({{greeting, "250-mx\r\n250 8BITMIME\r\n", bye}, {m, Quit{}}});
  CHECK(r.log == Log{c_ehlo, "ready", "done mail=553 rcpt=- data=-", "ready", "C: QUIT\r\n", "close"});
  CHECK(r.results.at(0).mail->summary() == "553 5.6.7 upstream does not support SMTPUTF8");
}

TEST_CASE("addresses that would break the command line are never sent", "[smtp][client_session]") {
  Run r = check({{greeting, ehlo_bare, mail_ok, rcpt_ok, go_ahead, queued},
                 {message({"evil@x>\r\nRSET", "bob@example.org"})}});
  CHECK(r.log == Log{c_ehlo, "ready", "C: MAIL FROM:<alice@example.com>\r\n", c_rcpt, c_data, c_body,
                     "done mail=250 rcpt=553,250 data=250", "ready"});
  CHECK(r.results.at(0).rcpt.at(0).summary() == "553 5.1.3 recipient address cannot be sent upstream");

  OutgoingMessage bad = message();
  bad.sender = "a@b>\r\nDATA";
  r = check({{greeting, ehlo_bare}, {bad}});
  CHECK(r.log == Log{c_ehlo, "ready", "done mail=553 rcpt=- data=-", "ready"});
}

TEST_CASE("once closed, every input is ignored", "[smtp][client_session]") {
  ClientSession s(policy());
  s.handle_connected(t0);
  const std::string in = greeting + ehlo_bare + "421 bye\r\n";
  s.handle_bytes(std::span<const char>(in.data(), in.size()), t0);
  // Ready was queued before the 421: a driver acting on it must be harmless.
  s.send_message(message(), t0);
  s.quit(t0);
  std::vector<std::string> kinds;
  while (auto a = s.poll_action()) {
    kinds.push_back(std::visit(overloaded{[](client_action::Send&) { return "send"; },
                                          [](client_action::MessageDone&) { return "done"; },
                                          [](client_action::Ready&) { return "ready"; },
                                          [](client_action::Failed&) { return "failed"; },
                                          [](client_action::Close&) { return "close"; },
                                          [](client_action::StartTls&) { return "starttls"; }},
                               *a));
  }
  CHECK(kinds == std::vector<std::string>{"send", "ready", "failed", "close"});
  CHECK(s.state() == ClientState::closed);
  CHECK_FALSE(s.poll_deadline());
  s.handle_bytes(std::span<const char>(greeting.data(), greeting.size()), t0);
  s.handle_eof(t0);
  s.handle_timeout(t0 + 24h);
  s.handle_sent(t0);
  CHECK_FALSE(s.poll_action());
  CHECK(s.state() == ClientState::closed);
}

TEST_CASE("no data can end the message early or carry a bare CR or LF upstream", "[smtp][client_session]") {
  // Every string of up to 7 bytes over the alphabet that matters, exhaustively.
  const std::string alphabet = ".\r\na";
  std::size_t checked = 0;
  for (std::size_t length = 0; length <= 7; ++length) {
    std::vector<std::size_t> digits(length, 0);
    for (;;) {
      std::string data;
      for (std::size_t d : digits) data += alphabet[d];
      const Run r = run({{greeting, ehlo_bare, mail_ok, rcpt_ok, go_ahead}, {message({"bob@example.org"}, data)}},
                        Feed::whole);
      REQUIRE(r.log.size() == 6);
      const std::string body = r.log[5].substr(3);
      CAPTURE(data, body);
      // The only CRLF.CRLF (or the leading ".CRLF" of an empty body) is the terminator.
      if (body.size() == 3) {
        CHECK(body == ".\r\n");
      } else {
        CHECK(body.find("\r\n.\r\n") == body.size() - 5);
        CHECK(body.rfind(".\r\n", 0) != 0);
      }
      for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '\r') CHECK((i + 1 < body.size() && body[i + 1] == '\n'));
        if (body[i] == '\n') CHECK((i > 0 && body[i - 1] == '\r'));
      }
      ++checked;
      std::size_t pos = 0;
      while (pos < length && ++digits[pos] == alphabet.size()) digits[pos++] = 0;
      if (pos == length) break;
    }
  }
  CHECK(checked == 21845);   // 4^0 + 4^1 + … + 4^7
}

// --- STARTTLS and AUTH ------------------------------------------------------------------------------

namespace {

const std::string password = "s3cret-pass";
const std::string token = "ya29.s3cret-token";
// base64("\0alice@example.com\0s3cret-pass"), base64 of the user name, of the password, and the
// XOAUTH2 initial response base64("user=alice@example.com\x01auth=Bearer ya29.s3cret-token\x01\x01").
const std::string plain_b64 = "AGFsaWNlQGV4YW1wbGUuY29tAHMzY3JldC1wYXNz";
const std::string user_b64 = "YWxpY2VAZXhhbXBsZS5jb20=";
const std::string password_b64 = "czNjcmV0LXBhc3M=";
const std::string xoauth2_b64 = "dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnMzY3JldC10b2tlbgEB";

const std::string ehlo_starttls = "250-mx.example.org\r\n250-SIZE 5\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n";
const std::string ehlo_inside = "250-mx.example.org\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n";
const std::string tls_go = "220 2.0.0 Ready to start TLS\r\n";
const std::string auth_ok = "235 2.7.0 Authentication successful\r\n";
const std::string auth_bad = "535 5.7.8 Authentication credentials invalid\r\n";
const std::string c_starttls = "C: STARTTLS\r\n";
const std::string c_auth_plain = "C: AUTH PLAIN " + plain_b64 + "\r\n";

Script tls_script(std::vector<std::string> server, ClientPolicy::TlsMode tls, std::string user = "") {
  Script s;
  s.server = std::move(server);
  s.client.tls = tls;
  s.client.username = std::move(user);
  s.client.password = mailferry::Secret(password);
  return s;
}

// Everything the session sent, concatenated.
std::string sent(const Run& r) {
  std::string out;
  for (const std::string& line : r.log) {
    if (line.rfind("C: ", 0) == 0) out += line.substr(3);
  }
  return out;
}

}  // namespace

TEST_CASE("STARTTLS: StartTls action, EHLO again, extensions re-read", "[smtp][client_session][tls]") {
  Script s = tls_script({greeting, ehlo_starttls, tls_go, "250-mx.example.org\r\n250 SIZE 1000\r\n", mail_ok,
                         rcpt_ok, go_ahead, queued, bye},
                        ClientPolicy::TlsMode::starttls);
  s.jobs = {message(), Quit{}};
  const Run r = check(s);
  // Before TLS the server claimed SIZE 5 (the message would have been refused); inside, SIZE 1000.
  // No AUTH is attempted: no user name is configured, though the server offers it.
  CHECK(r.log == Log{c_ehlo, c_starttls, "starttls", c_ehlo, "ready", c_mail, c_rcpt, c_data, c_body,
                     "done mail=250 rcpt=250 data=250", "ready", "C: QUIT\r\n", "close"});

  ClientSession session(s.client);
  session.handle_connected(t0);
  const std::string in = greeting + ehlo_starttls + tls_go;
  session.handle_bytes(std::span<const char>(in.data(), in.size()), t0);
  CHECK(session.state() == ClientState::tls_handshake);
  CHECK_FALSE(session.secure());
  CHECK(session.has_extension("STARTTLS"));
  CHECK(session.poll_deadline() == t0 + std::chrono::minutes(5));   // tls_handshake_timeout
  session.handle_tls_established(t0 + 1s);
  CHECK(session.secure());
  CHECK(session.extensions().empty());   // RFC 3207 §4.2: forgotten until the new EHLO
  CHECK(session.state() == ClientState::ehlo);
  session.handle_tls_established(t0 + 2s);   // not in the handshake: ignored
  session.handle_tls_failed("late", t0 + 2s);
  CHECK(session.state() == ClientState::ehlo);
}

TEST_CASE("STARTTLS required but not offered: nothing after EHLO is sent", "[smtp][client_session][tls]") {
  const std::string detail =
      "failed tls_unavailable: STARTTLS required but the server's EHLO did not offer it (stripped by a "
      "middlebox?); nothing was sent on this connection";
  // A middlebox overwrote STARTTLS (as some firewalls do, with "XXXXXXXA") but left AUTH: still no
  // AUTH, no MAIL, not even QUIT.
  Script s = tls_script({greeting, "250-mx.example.org\r\n250-AUTH PLAIN LOGIN\r\n250 XXXXXXXA\r\n"},
                        ClientPolicy::TlsMode::starttls, "alice@example.com");
  s.jobs = {message(), Quit{}};
  Run r = check(s);
  CHECK(r.log == Log{c_ehlo, detail, "close"});
  CHECK(sent(r) == "EHLO relay.example.net\r\n");
  REQUIRE(r.failures.size() == 1);
  REQUIRE(r.failures[0].reply);
  CHECK(r.failures[0].reply->summary() == "454 4.7.4 STARTTLS required but not offered (stripped by a middlebox?)");

  // EHLO refused, HELO accepted: HELO has no extensions, so no STARTTLS either.
  s.server = {greeting, "502 5.5.2 what\r\n", "250 mx.example.org\r\n"};
  r = check(s);
  CHECK(r.log == Log{c_ehlo, "C: HELO relay.example.net\r\n", detail, "close"});
  CHECK(sent(r) == "EHLO relay.example.net\r\nHELO relay.example.net\r\n");
}

TEST_CASE("STARTTLS refused or answered oddly", "[smtp][client_session][tls]") {
  Script s = tls_script({greeting, ehlo_starttls, "454 4.7.0 TLS not available due to temporary reason\r\n"},
                        ClientPolicy::TlsMode::starttls, "alice@example.com");
  s.jobs = {message()};
  Run r = check(s);
  CHECK(r.log == Log{c_ehlo, c_starttls,
                     "failed tls_unavailable: STARTTLS refused: 454 4.7.0 TLS not available due to temporary reason",
                     "close"});
  CHECK(r.failures.at(0).reply->code == 454);

  s.server = {greeting, ehlo_starttls, "502 5.5.1 no\r\n"};
  CHECK(check(s).log == Log{c_ehlo, c_starttls, "failed tls_unavailable: STARTTLS refused: 502 5.5.1 no", "close"});
  s.server = {greeting, ehlo_starttls, "250 ok\r\n"};
  CHECK(check(s).log ==
        Log{c_ehlo, c_starttls, "failed protocol: unexpected reply while waiting for the STARTTLS reply: 250 ok", "close"});
  s.server = {greeting, ehlo_starttls, "421 4.3.2 shutting down\r\n"};
  CHECK(check(s).log ==
        Log{c_ehlo, c_starttls, "failed reply: server closing the session: 421 4.3.2 shutting down", "close"});
  s.server = {greeting, ehlo_starttls};
  s.end = End::timeout;
  CHECK(check(s).log == Log{c_ehlo, c_starttls, "timer +300s",
                            "failed connection: timed out waiting for the STARTTLS reply", "close"});
}

TEST_CASE("plaintext injected after the 220 to STARTTLS fails the session (CVE-2011-0411)",
          "[smtp][client_session][tls]") {
  const std::string injected = "250-mx.example.org\r\n250 AUTH PLAIN\r\n";
  Script s = tls_script({greeting, ehlo_starttls, tls_go + injected}, ClientPolicy::TlsMode::starttls,
                        "alice@example.com");
  s.jobs = {message()};
  s.handshake = Handshake::pending;   // the shell is still handshaking when the bytes come
  // Arriving with the 220: detected before the handshake is even asked for.
  const Log with_220{c_ehlo, c_starttls,
                     "failed protocol: the server sent 36 bytes of plaintext after its 220 to STARTTLS, before "
                     "the TLS handshake (command injection, CVE-2011-0411 style); nothing more was sent",
                     "close"};
  // Arriving after it: the handshake was asked for, and plaintext reaching the session now is refused.
  const Log after_220{c_ehlo, c_starttls, "starttls",
                      "failed protocol: the server sent plaintext after its 220 to STARTTLS, before the TLS "
                      "handshake (command injection, CVE-2011-0411 style); nothing more was sent",
                      "close"};
  CHECK(run(s, Feed::whole).log == with_220);
  CHECK(run(s, Feed::bytewise).log == after_220);
  const std::size_t total = tls_go.size() + injected.size();
  for (std::size_t k = 0; k <= total; ++k) {
    CAPTURE(k);
    const Run r = run(s, Feed::split, k);
    if (k == tls_go.size()) {
      CHECK(r.log == after_220);
    } else if (k < tls_go.size() || k == total) {
      CHECK(r.log == with_220);
    } else {   // the 220 and the first injected bytes in one read
      REQUIRE(r.log.size() == 4);
      CHECK(r.log[2] == "failed protocol: the server sent " + std::to_string(k - tls_go.size()) +
                            (k - tls_go.size() == 1 ? " byte" : " bytes") +
                            " of plaintext after its 220 to STARTTLS, before the TLS handshake (command injection, "
                            "CVE-2011-0411 style); nothing more was sent");
    }
    CHECK(sent(r) == "EHLO relay.example.net\r\nSTARTTLS\r\n");
  }
}

TEST_CASE("TLS handshake failure, timeout and EOF", "[smtp][client_session][tls]") {
  Script s = tls_script({greeting, ehlo_starttls, tls_go}, ClientPolicy::TlsMode::starttls, "alice@example.com");
  s.jobs = {message()};
  s.handshake = Handshake::fail;
  Run r = check(s);
  CHECK(r.log == Log{c_ehlo, c_starttls, "starttls",
                     "failed tls: TLS handshake failed: certificate verify failed: unknown CA", "close"});
  CHECK(r.failures.at(0).reply->summary() ==
        "454 4.7.5 TLS handshake with the upstream failed: certificate verify failed: unknown CA");

  s.handshake = Handshake::pending;
  s.client.tls_handshake_timeout = 30s;
  s.end = End::timeout;
  CHECK(check(s).log == Log{c_ehlo, c_starttls, "starttls", "timer +30s",
                            "failed tls: timed out waiting for the TLS handshake", "close"});
  s.end = End::eof;
  CHECK(check(s).log == Log{c_ehlo, c_starttls, "starttls",
                            "failed connection: connection closed by the server while waiting for the TLS handshake",
                            "close"});
}

TEST_CASE("AUTH PLAIN: exact bytes, after STARTTLS and with implicit TLS", "[smtp][client_session][auth]") {
  Script s = tls_script({greeting, ehlo_starttls, tls_go, ehlo_inside, auth_ok, mail_ok}, ClientPolicy::TlsMode::starttls,
                        "alice@example.com");
  s.jobs = {message()};
  CHECK(check(s).log == Log{c_ehlo, c_starttls, "starttls", c_ehlo, c_auth_plain, "ready", c_mail, c_rcpt});

  s = tls_script({greeting, ehlo_inside, auth_ok, mail_ok}, ClientPolicy::TlsMode::implicit, "alice@example.com");
  s.jobs = {message()};
  const Run r = check(s);
  CHECK(r.log == Log{c_ehlo, c_auth_plain, "ready", c_mail, c_rcpt});
  CHECK(sent(r) == "EHLO relay.example.net\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHMzY3JldC1wYXNz\r\n"
                   "MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\n");

  ClientSession session(s.client);
  CHECK(session.secure());   // implicit: secure from the start
  CHECK_FALSE(session.authenticated());
  session.handle_connected(t0);
  const std::string in = greeting + ehlo_inside + auth_ok;
  session.handle_bytes(std::span<const char>(in.data(), in.size()), t0);
  CHECK(session.authenticated());
  CHECK(session.state() == ClientState::ready);
}

TEST_CASE("AUTH LOGIN dialogue", "[smtp][client_session][auth]") {
  Script s = tls_script({greeting, "250-mx\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n",
                         auth_ok},
                        ClientPolicy::TlsMode::implicit, "alice@example.com");
  Run r = check(s);
  CHECK(r.log == Log{c_ehlo, "C: AUTH LOGIN\r\n", "C: " + user_b64 + "\r\n", "C: " + password_b64 + "\r\n", "ready"});

  s.server = {greeting, "250-mx\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n", auth_bad};
  r = check(s);
  CHECK(r.log == Log{c_ehlo, "C: AUTH LOGIN\r\n", "C: " + user_b64 + "\r\n", "C: " + password_b64 + "\r\n",
                     "failed auth_rejected: AUTH LOGIN rejected: 535 5.7.8 Authentication credentials invalid",
                     "close"});
  CHECK(r.failures.at(0).reply->code == 535);

  // A user name the server does not know, refused before the password is asked for.
  s.server = {greeting, "250-mx\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", auth_bad};
  CHECK(check(s).log.at(3) == "failed auth_rejected: AUTH LOGIN rejected: 535 5.7.8 Authentication credentials invalid");
  // A third prompt is not part of LOGIN.
  s.server = {greeting, "250-mx\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n", "334 more?\r\n"};
  CHECK(check(s).log.at(4) == "failed protocol: unexpected reply while waiting for the final AUTH reply: 334 more?");
}

TEST_CASE("base64 of the SASL responses, every padding", "[smtp][client_session][auth]") {
  auto [user, encoded] = GENERATE(table<std::string, std::string>({
      {"a", "YQ=="},
      {"ab", "YWI="},
      {"abc", "YWJj"},
      {"j\xc3\xb6rg", "asO2cmc="},
      {"\xff\xfe\xfd", "//79"},
  }));
  Script s = tls_script({greeting, "250-mx\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n"},
                        ClientPolicy::TlsMode::implicit, user);
  CHECK(check(s).log.at(2) == "C: " + encoded + "\r\n");
}

TEST_CASE("AUTH XOAUTH2: initial response, and the 334 error answered with an empty line", "[smtp][client_session][auth]") {
  Script s = tls_script({greeting, ehlo_inside, auth_ok}, ClientPolicy::TlsMode::implicit, "alice@example.com");
  s.client.auth = ClientPolicy::AuthMethod::xoauth2;
  s.client.password = mailferry::Secret(token);
  CHECK(check(s).log == Log{c_ehlo, "C: AUTH XOAUTH2 " + xoauth2_b64 + "\r\n", "ready"});

  s.server = {greeting, ehlo_inside,
              "334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n",
              "535-5.7.8 Username and Password not accepted.\r\n535 5.7.8 Learn more\r\n"};
  const Run r = check(s);
  CHECK(r.log == Log{c_ehlo, "C: AUTH XOAUTH2 " + xoauth2_b64 + "\r\n", "C: \r\n",
                     "failed auth_rejected: AUTH XOAUTH2 rejected: 535 5.7.8 Username and Password not accepted. / "
                     "Learn more (server said: {\"status\":\"400\",\"schemes\":\"Bearer\",\"scope\":\"https://mail.google.com/\"})",
                     "close"});
  CHECK(r.failures.at(0).reply->code == 535);
}

TEST_CASE("AUTH answers: 535 auth_rejected, 4xx reply, oddities protocol", "[smtp][client_session][auth]") {
  Script s = tls_script({greeting, ehlo_inside, auth_bad}, ClientPolicy::TlsMode::implicit, "alice@example.com");
  s.jobs = {message()};
  Run r = check(s);
  CHECK(r.log == Log{c_ehlo, c_auth_plain,
                     "failed auth_rejected: AUTH PLAIN rejected: 535 5.7.8 Authentication credentials invalid", "close"});
  CHECK(r.failures.at(0).reply->summary() == "535 5.7.8 Authentication credentials invalid");

  s.server = {greeting, ehlo_inside, "534 5.7.9 Please log in with your web browser\r\n"};
  CHECK(check(s).log.at(2) ==
        "failed auth_rejected: AUTH PLAIN rejected: 534 5.7.9 Please log in with your web browser");
  s.server = {greeting, ehlo_inside, "454 4.7.0 Temporary authentication failure\r\n"};
  CHECK(check(s).log.at(2) == "failed reply: AUTH PLAIN failed for now: 454 4.7.0 Temporary authentication failure");
  s.server = {greeting, ehlo_inside, "334 \r\n"};   // PLAIN's initial response was already sent
  CHECK(check(s).log.at(2) == "failed protocol: unexpected reply while waiting for the AUTH reply: 334 ");
  s.server = {greeting, ehlo_inside, "250 ok\r\n"};
  CHECK(check(s).log.at(2) == "failed protocol: unexpected reply while waiting for the AUTH reply: 250 ok");
  s.server = {greeting, ehlo_inside};
  s.end = End::timeout;
  CHECK(check(s).log == Log{c_ehlo, c_auth_plain, "timer +300s", "failed connection: timed out waiting for the AUTH reply",
                            "close"});
}

TEST_CASE("AUTH mechanism choice", "[smtp][client_session][auth]") {
  using Method = ClientPolicy::AuthMethod;
  auto [method, ext, first] = GENERATE(table<Method, std::string, std::string>({
      {Method::auto_, "AUTH LOGIN PLAIN XOAUTH2", c_auth_plain},
      {Method::auto_, "AUTH XOAUTH2 LOGIN", "C: AUTH LOGIN\r\n"},
      {Method::auto_, "AUTH=LOGIN", "C: AUTH LOGIN\r\n"},   // pre-RFC 4954 form
      {Method::auto_, "auth cram-md5 plain", c_auth_plain},
      {Method::auto_, "AUTH XOAUTH2",
       "failed reply: server offers neither AUTH PLAIN nor AUTH LOGIN"},   // never XOAUTH2 unasked
      {Method::auto_, "8BITMIME", "failed reply: server offers neither AUTH PLAIN nor AUTH LOGIN"},
      {Method::auto_, "AUTH", "failed reply: server offers neither AUTH PLAIN nor AUTH LOGIN"},
      {Method::auto_, "AUTHPLAIN", "failed reply: server offers neither AUTH PLAIN nor AUTH LOGIN"},
      {Method::login, "AUTH PLAIN LOGIN", "C: AUTH LOGIN\r\n"},
      {Method::plain, "AUTH LOGIN", "failed reply: server does not offer AUTH PLAIN"},
      {Method::login, "AUTH PLAIN", "failed reply: server does not offer AUTH LOGIN"},
      {Method::xoauth2, "AUTH PLAIN LOGIN", "failed reply: server does not offer AUTH XOAUTH2"},
  }));
  CAPTURE(ext);
  Script s = tls_script({greeting, "250-mx\r\n250 " + ext + "\r\n"}, ClientPolicy::TlsMode::implicit, "alice@example.com");
  s.client.auth = method;
  s.jobs = {message()};
  const Run r = check(s);
  REQUIRE(r.log.size() >= 2);
  CHECK(r.log[1] == first);
  if (first.rfind("failed", 0) == 0) {
    CHECK(r.log == Log{c_ehlo, first, "close"});
    CHECK(r.failures.at(0).reply->code == 504);
    CHECK(r.failures.at(0).reply->enhanced == "5.7.4");
  }
}

TEST_CASE("credentials only over TLS; no user name, no AUTH", "[smtp][client_session][auth]") {
  Script s = tls_script({greeting, ehlo_inside, auth_ok}, ClientPolicy::TlsMode::none, "alice@example.com");
  s.jobs = {message()};
  Run r = check(s);
  CHECK(r.log == Log{c_ehlo,
                     "failed tls_unavailable: refusing to send credentials without TLS on this port (tls = \"none\"; "
                     "allow_auth_without_tls is off)",
                     "close"});
  CHECK(sent(r) == "EHLO relay.example.net\r\n");
  CHECK(r.failures.at(0).reply->summary() == "454 4.7.4 refusing to send credentials without TLS");

  s.client.allow_auth_without_tls = true;
  CHECK(check(s).log == Log{c_ehlo, c_auth_plain, "ready", c_mail});

  // Over STARTTLS, AUTH offered before TLS is not taken up: STARTTLS comes first.
  s = tls_script({greeting, ehlo_starttls, tls_go, ehlo_inside, auth_ok}, ClientPolicy::TlsMode::starttls,
                 "alice@example.com");
  CHECK(check(s).log == Log{c_ehlo, c_starttls, "starttls", c_ehlo, c_auth_plain, "ready"});

  // No user name: the offered AUTH is ignored, whatever the TLS mode.
  for (auto mode : {ClientPolicy::TlsMode::none, ClientPolicy::TlsMode::implicit}) {
    s = tls_script({greeting, ehlo_inside}, mode);
    CHECK(check(s).log == Log{c_ehlo, "ready"});
  }
}

TEST_CASE("credentials appear only in Send bytes, even when the server echoes them", "[smtp][client_session][auth]") {
  using Method = ClientPolicy::AuthMethod;
  const std::vector<std::string> forbidden = {password, password_b64, plain_b64, token, xoauth2_b64};
  struct Case {
    Method method;
    std::vector<std::string> server;
    End end;
  };
  const std::string echo = "535 5.7.8 bad: " + plain_b64 + " = \"" + password + "\"\r\n";
  const std::vector<Case> cases = {
      {Method::plain, {greeting, ehlo_inside, echo}, End::none},
      {Method::plain, {greeting, ehlo_inside, "454 4.7.0 try " + password + " later\r\n"}, End::none},
      {Method::plain, {greeting, ehlo_inside, "421 4.7.0 " + plain_b64 + "\r\n"}, End::none},
      {Method::plain, {greeting, ehlo_inside, "garbage " + password + "\r\n"}, End::none},
      {Method::plain, {greeting, ehlo_inside}, End::timeout},
      {Method::plain, {greeting, ehlo_inside}, End::eof},
      {Method::plain, {greeting, ehlo_inside, auth_ok, "550 5.7.1 " + password + "\r\n"}, End::none},
      {Method::login, {greeting, ehlo_inside, "334 x\r\n", "334 y\r\n", "535 5.7.8 got " + password_b64 + "\r\n"},
       End::none},
      {Method::xoauth2, {greeting, ehlo_inside, "334 " + xoauth2_b64 + "\r\n", "535 5.7.8 " + xoauth2_b64 + "\r\n"},
       End::none},
      {Method::xoauth2, {greeting, "250-mx\r\n250 AUTH PLAIN\r\n"}, End::none},
  };
  for (const Case& c : cases) {
    Script s = tls_script(c.server, ClientPolicy::TlsMode::implicit, "alice@example.com");
    s.client.auth = c.method;
    if (c.method == Method::xoauth2) s.client.password = mailferry::Secret(token);
    s.jobs = {message()};
    s.end = c.end;
    const Run r = check(s);
    CAPTURE(r.log);
    std::string visible;   // everything but the bytes sent
    for (const std::string& line : r.log) {
      if (line.rfind("C: ", 0) != 0) visible += line + "\n";
    }
    for (const auto& f : r.failures) {
      visible += f.detail + "\n";
      if (f.reply) visible += f.reply->summary() + "\n";
    }
    for (const auto& m : r.results) visible += m.mail ? m.mail->summary() + "\n" : "";
    if (r.last_reply) visible += r.last_reply->summary() + "\n";
    CHECK(r.log.back() == (r.failures.empty() ? "C: RSET\r\n" : "close"));
    for (const std::string& secret : forbidden) {
      CAPTURE(secret);
      CHECK(visible.find(secret) == std::string::npos);
    }
  }
  // The echo is still readable, with the secrets masked.
  Script s = tls_script({greeting, ehlo_inside, echo}, ClientPolicy::TlsMode::implicit, "alice@example.com");
  CHECK(check(s).failures.at(0).reply->summary() == "535 5.7.8 bad: ******** = \"********\"");
}

// --- PIPELINING (RFC 2920) ---------------------------------------------------------------------------

namespace {

Script pipelined(std::vector<std::string> server, std::vector<Job> jobs, End end = End::none) {
  Script s{std::move(server), std::move(jobs), end};
  s.client.pipelining = true;
  return s;
}

// Every reply of every MessageDone in full: a pipelined result must equal the one-at-a-time result.
std::string full(const Run& r) {
  std::string out;
  for (const MessageResult& m : r.results) {
    out += "mail=" + (m.mail ? m.mail->summary() : "-");
    for (const Reply& rcpt : m.rcpt) out += " rcpt=" + rcpt.summary();
    out += " data=" + (m.data ? m.data->summary() : "-") + "\n";
  }
  return out;
}

const std::vector<std::string> trio = {"bob@example.org", "carol@example.org", "dave@example.org"};
const std::string c_group1 = "C: MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n";
const std::string c_group3 =
    "C: MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\n"
    "RCPT TO:<dave@example.org>\r\nDATA\r\n";
const std::vector<std::string> nobody_bob = {"nobody@example.org", "bob@example.org"};
const std::string c_group_nobody_bob =
    "C: MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
    "DATA\r\n";
const std::string c_group_nobody = "C: MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n";
const std::string no_such_user = "550 5.1.1 No such user\r\n";
const std::string no_valid_rcpt = "554 5.5.1 Error: no valid recipients\r\n";
const std::string need_mail = "503 5.5.1 Error: need MAIL command\r\n";

}  // namespace

TEST_CASE("PIPELINING: MAIL, every RCPT and DATA in one Send, DATA last", "[smtp][client_session][pipelining]") {
  CHECK(ClientPolicy{}.pipelining);   // used whenever the server advertises it
  OutgoingMessage m = message(trio);
  m.body_8bit = true;
  m.smtputf8 = true;
  const Run r = check(pipelined({greeting, ehlo_ok}, {m}));
  CHECK(r.log == Log{c_ehlo, "ready",
                     "C: MAIL FROM:<alice@example.com> SIZE=22 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<bob@example.org>\r\n"
                     "RCPT TO:<carol@example.org>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n"});
}

TEST_CASE("PIPELINING: all accepted, the body after 354, the same result as one at a time",
          "[smtp][client_session][pipelining]") {
  const std::vector<std::string> server = {greeting, ehlo_ok, mail_ok, rcpt_ok, rcpt_ok, rcpt_ok, go_ahead, queued, bye};
  const Run r = check(pipelined(server, {message(trio), Quit{}}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group3, c_body, "done mail=250 rcpt=250,250,250 data=250", "ready",
                     "C: QUIT\r\n", "close"});
  const Run one_at_a_time = check({server, {message(trio), Quit{}}});
  CHECK(one_at_a_time.log.size() == r.log.size() + 4);   // MAIL, RCPT, RCPT, RCPT, DATA instead of one group
  CHECK(full(r) == full(one_at_a_time));
  CHECK(r.results.at(0).data->lines == std::vector<std::string>{"Ok: queued as 4F2A"});
}

TEST_CASE("PIPELINING: the replies in one read, one per read, or split anywhere", "[smtp][client_session][pipelining]") {
  // check() also feeds each input byte by byte and split in two at every position.
  const Run one_read = check(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + rcpt_ok + rcpt_ok + go_ahead, queued},
                                       {message(trio)}));
  CHECK(one_read.log == Log{c_ehlo, "ready", c_group3, c_body, "done mail=250 rcpt=250,250,250 data=250", "ready"});
  const Run per_read = check(pipelined({greeting, ehlo_ok, mail_ok, rcpt_ok, rcpt_ok, rcpt_ok, go_ahead, queued},
                                       {message(trio)}));
  CHECK(per_read.log == one_read.log);
  // The greeting, EHLO reply and all the group's replies in one read, as a fast server may send them.
  const Run everything = check(pipelined({greeting + ehlo_ok, mail_ok + rcpt_ok + rcpt_ok + rcpt_ok + go_ahead, queued},
                                         {message(trio)}));
  CHECK(everything.log == one_read.log);
}

TEST_CASE("PIPELINING: one RCPT refused of three", "[smtp][client_session][pipelining]") {
  const std::vector<std::string> server = {greeting, ehlo_ok, mail_ok, rcpt_ok, no_such_user, rcpt_ok, go_ahead, queued};
  const Run r = check(pipelined(server, {message(trio)}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group3, c_body, "done mail=250 rcpt=250,550,250 data=250", "ready"});
  CHECK(r.results.at(0).rcpt.at(1).summary() == "550 5.1.1 No such user");
  CHECK(full(r) == full(check({server, {message(trio)}})));
}

TEST_CASE("PIPELINING: every RCPT refused, DATA refused: no body, RSET", "[smtp][client_session][pipelining]") {
  const std::string data_refusal = GENERATE(as<std::string>{}, no_valid_rcpt, "503 5.5.1 Error: need RCPT command\r\n");
  CAPTURE(data_refusal);
  const Run r = check(pipelined({greeting, ehlo_ok, mail_ok, no_such_user, "450 4.2.1 busy\r\n", data_refusal, rset_ok},
                                {message(nobody_bob)}));
  // No DATA reply in the result, as without PIPELINING, where DATA is not sent at all.
  CHECK(r.log == Log{c_ehlo, "ready", c_group_nobody_bob, "done mail=250 rcpt=550,450 data=-", "C: RSET\r\n", "ready"});
  CHECK(full(r) == full(check({{greeting, ehlo_ok, mail_ok, no_such_user, "450 4.2.1 busy\r\n", rset_ok},
                               {message(nobody_bob)}})));
  // The answers were final before the DATA reply: a connection lost then loses nothing.
  const Run lost = check(pipelined({greeting, ehlo_ok, mail_ok, no_such_user, "450 4.2.1 busy\r\n"},
                                   {message(nobody_bob)}, End::eof));
  CHECK(lost.log == Log{c_ehlo, "ready", c_group_nobody_bob, "done mail=250 rcpt=550,450 data=-",
                        "failed connection: connection closed by the server while waiting for the DATA reply", "close"});
}

TEST_CASE("PIPELINING: MAIL refused: no body, the rest of the group read, then RSET", "[smtp][client_session][pipelining]") {
  const std::string refused = "550 5.7.1 Sender rejected\r\n";
  const Run r = check(pipelined({greeting, ehlo_ok, refused, need_mail, need_mail, need_mail, rset_ok, bye},
                                {message(nobody_bob), Quit{}}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group_nobody_bob, "done mail=550 rcpt=- data=-", "C: RSET\r\n", "ready",
                     "C: QUIT\r\n", "close"});
  // delivery::classify reads only the MAIL reply then; the result is the one-at-a-time result.
  CHECK(full(r) == full(check({{greeting, ehlo_ok, refused, rset_ok, bye},
                               {message(nobody_bob), Quit{}}})));
  // The RSET waits for the DATA reply: before it, RSET could have been taken for message data.
  const Run waiting = check(pipelined({greeting, ehlo_ok, refused, need_mail, need_mail},
                                      {message(nobody_bob)}, End::timeout));
  CHECK(waiting.log == Log{c_ehlo, "ready", c_group_nobody_bob, "done mail=550 rcpt=- data=-", "timer +120s",
                           "failed connection: timed out waiting for the DATA reply", "close"});
}

TEST_CASE("PIPELINING: 354 although no RCPT was accepted: a lone \".\", never the body", "[smtp][client_session][pipelining]") {
  // Every RCPT refused, and a broken server accepts DATA anyway.
  Run r = check(pipelined({greeting, ehlo_ok, mail_ok, no_such_user, go_ahead, no_valid_rcpt, bye},
                          {message({"nobody@example.org"}), Quit{}}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group_nobody,
                     "done mail=250 rcpt=550 data=-", "C: .\r\n", "ready", "C: QUIT\r\n", "close"});
  CHECK(sent(r).find("hello") == std::string::npos);

  // MAIL refused, and still 354; whatever the server says to the ".", it is not recorded, and the
  // transaction is over without an RSET.
  r = check(pipelined({greeting, ehlo_ok, "451 4.3.0 Try again later\r\n", need_mail, go_ahead, "250 2.0.0 Ok\r\n"},
                      {message()}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group1, "done mail=451 rcpt=- data=-", "C: .\r\n", "ready"});
  CHECK(sent(r).find("hello") == std::string::npos);

  // The reply to the "." is awaited under the end-of-data timeout.
  r = check(pipelined({greeting, ehlo_ok, mail_ok, no_such_user, go_ahead}, {message({"nobody@example.org"})},
                      End::timeout));
  CHECK(r.log.at(r.log.size() - 3) == "timer +600s");
  CHECK(r.log.at(r.log.size() - 2) == "failed connection: timed out waiting for the reply to the end of data");
}

TEST_CASE("PIPELINING: the connection lost mid-group: no MessageDone", "[smtp][client_session][pipelining]") {
  const std::string detail = "failed connection: connection closed by the server while waiting for the ";
  Run r = check(pipelined({greeting, ehlo_ok, mail_ok}, {message(trio)}, End::eof));
  CHECK(r.log == Log{c_ehlo, "ready", c_group3, detail + "RCPT TO reply", "close"});
  CHECK(r.results.empty());
  r = check(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + rcpt_ok}, {message(trio)}, End::eof));
  CHECK(r.log == Log{c_ehlo, "ready", c_group3, detail + "RCPT TO reply", "close"});
  r = check(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + rcpt_ok + "250-2.1.5 half a rep"}, {message(trio)}, End::eof));
  CHECK(r.log == Log{c_ehlo, "ready", c_group3, detail + "RCPT TO reply", "close"});
  r = check(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + rcpt_ok + rcpt_ok}, {message(trio)}, End::eof));
  CHECK(r.log == Log{c_ehlo, "ready", c_group3, detail + "DATA reply", "close"});
  CHECK(r.results.empty());
  // A 421 in the middle of the group is the server's word for the whole session.
  r = check(pipelined({greeting, ehlo_ok, mail_ok + "421 4.7.0 mx closing connection\r\n"}, {message(trio)}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group3,
                     "failed reply: server closing the session: 421 4.7.0 mx closing connection", "close"});
  CHECK(r.results.empty());
}

TEST_CASE("PIPELINING: more replies than commands is a protocol failure", "[smtp][client_session][pipelining]") {
  // Fed whole: the extra reply comes in the same read as the DATA reply, before anything else was
  // sent. (Arriving later, it cannot be told from the reply to what was sent next.)
  Run r = run(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + go_ahead + queued}, {message()}), Feed::whole);
  CHECK(r.log == Log{c_ehlo, "ready", c_group1,
                     "failed protocol: the server sent " + std::to_string(queued.size()) +
                         " bytes after its reply to DATA, the last command of the pipelined group: more replies "
                         "than commands",
                     "close"});
  CHECK(r.results.empty());
  // After a refused DATA too: which reply answers which command is in doubt, so none is reported.
  r = run(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + no_valid_rcpt + "2"}, {message()}), Feed::whole);
  CHECK(r.log == Log{c_ehlo, "ready", c_group1,
                     "failed protocol: the server sent 1 byte after its reply to DATA, the last command of the "
                     "pipelined group: more replies than commands",
                     "close"});
  CHECK(r.results.empty());
  // After the final reply, as without PIPELINING: an unsolicited reply while idle.
  r = check(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + go_ahead, queued + "250 2.0.0 again\r\n"}, {message()}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group1, c_body, "done mail=250 rcpt=250 data=250", "ready",
                     "failed protocol: unsolicited reply while idle: 250 2.0.0 again", "close"});
  // Replies that make no sense where they fall are unexpected, as without PIPELINING.
  r = check(pipelined({greeting, ehlo_ok, mail_ok + go_ahead}, {message()}));
  CHECK(r.log.at(3) == "failed protocol: unexpected reply while waiting for the RCPT TO reply: 354 End data with "
                       "<CR><LF>.<CR><LF>");
  r = check(pipelined({greeting, ehlo_ok, mail_ok + rcpt_ok + "250 2.0.0 Ok\r\n"}, {message()}));
  CHECK(r.log.at(3) == "failed protocol: unexpected reply while waiting for the DATA reply: 250 2.0.0 Ok");
}

TEST_CASE("PIPELINING: each reply under its own RFC 5321 timeout", "[smtp][client_session][pipelining]") {
  ClientPolicy p = policy();
  p.pipelining = true;
  p.command_timeout = 11s;
  p.data_init_timeout = 13s;
  p.data_end_timeout = 17s;
  ClientSession s(p);
  auto feed = [&](const std::string& in, TimePoint now) {
    s.handle_bytes(std::span<const char>(in.data(), in.size()), now);
  };
  s.handle_connected(t0);
  feed(greeting + ehlo_ok, t0);
  while (s.poll_action()) {
  }
  s.send_message(message({"bob@example.org", "carol@example.org"}), t0 + 1s);
  CHECK(s.state() == ClientState::mail);
  CHECK(s.poll_deadline() == t0 + 12s);
  s.handle_sent(t0 + 2s);   // the group took a second to write
  CHECK(s.poll_deadline() == t0 + 13s);
  feed(mail_ok, t0 + 3s);
  CHECK(s.state() == ClientState::rcpt);
  CHECK(s.poll_deadline() == t0 + 14s);
  feed(rcpt_ok, t0 + 4s);
  CHECK(s.state() == ClientState::rcpt);
  CHECK(s.poll_deadline() == t0 + 15s);
  feed(rcpt_ok, t0 + 5s);
  CHECK(s.state() == ClientState::data);
  CHECK(s.poll_deadline() == t0 + 18s);   // data_init_timeout
  s.handle_timeout(t0 + 17s);              // early: nothing
  CHECK(s.state() == ClientState::data);
  feed(go_ahead, t0 + 6s);
  CHECK(s.state() == ClientState::data_body);
  CHECK(s.poll_deadline() == t0 + 23s);
  s.handle_timeout(t0 + 23s);
  CHECK(s.state() == ClientState::closed);
}

TEST_CASE("PIPELINING: a second message on the same session after RSET", "[smtp][client_session][pipelining]") {
  const Run r = check(pipelined({greeting, ehlo_ok, mail_ok, no_such_user, no_valid_rcpt, rset_ok, mail_ok, rcpt_ok,
                                 go_ahead, queued, bye},
                                {message({"nobody@example.org"}), message(), Quit{}}));
  CHECK(r.log == Log{c_ehlo, "ready", c_group_nobody,
                     "done mail=250 rcpt=550 data=-", "C: RSET\r\n", "ready", c_group1, c_body,
                     "done mail=250 rcpt=250 data=250", "ready", "C: QUIT\r\n", "close"});
}

TEST_CASE("PIPELINING: not advertised, or not wanted: one command at a time, as before",
          "[smtp][client_session][pipelining]") {
  const std::string ehlo_no_pipelining =
      "250-mx.example.org Hello relay.example.net\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
  const Log one_at_a_time{c_ehlo, c_mail, c_rcpt, c_data, c_body, "done mail=250 rcpt=250 data=250", "ready",
                          "C: QUIT\r\n", "close"};
  Script s = pipelined({greeting, ehlo_no_pipelining, mail_ok, rcpt_ok, go_ahead, queued, bye}, {message(), Quit{}});
  Log expected = one_at_a_time;
  expected.insert(expected.begin() + 1, "ready");
  CHECK(check(s).log == expected);
  // HELO: no extensions at all.
  s.server = {greeting, "502 5.5.2 what?\r\n", "250 mx.example.org\r\n", mail_ok, rcpt_ok, go_ahead, queued, bye};
  CHECK(check(s).log == Log{c_ehlo, "C: HELO relay.example.net\r\n", "ready", "C: MAIL FROM:<alice@example.com>\r\n",
                            c_rcpt, c_data, c_body, "done mail=250 rcpt=250 data=250", "ready", "C: QUIT\r\n", "close"});
  // Advertised, but turned off.
  s.server = {greeting, ehlo_ok, mail_ok, rcpt_ok, go_ahead, queued, bye};
  s.client.pipelining = false;
  CHECK(check(s).log == expected);
  // A group over max_pipelined_group goes one command at a time; one at the limit goes whole.
  s.client.pipelining = true;
  s.client.max_pipelined_group = c_group1.size() - 3 - 1;   // without "C: "
  CHECK(check(s).log == expected);
  s.client.max_pipelined_group = c_group1.size() - 3;
  CHECK(check(s).log == Log{c_ehlo, "ready", c_group1, c_body, "done mail=250 rcpt=250 data=250", "ready",
                            "C: QUIT\r\n", "close"});
}

TEST_CASE("PIPELINING: addresses that cannot be sent stay out of the group", "[smtp][client_session][pipelining]") {
  Run r = check(pipelined({greeting, ehlo_ok, mail_ok, rcpt_ok, no_such_user, go_ahead, queued},
                          {message({"evil@x>\r\nRSET", "bob@example.org", "bad\x01@x", "carol@example.org", "x<y"})}));
  CHECK(r.log == Log{c_ehlo, "ready",
                     "C: MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\n"
                     "RCPT TO:<carol@example.org>\r\nDATA\r\n",
                     c_body, "done mail=250 rcpt=553,250,553,550,553 data=250", "ready"});
  // None sendable: MAIL alone, then RSET, as without PIPELINING.
  r = check(pipelined({greeting, ehlo_ok, mail_ok, rset_ok}, {message({"evil@x>\r\nRSET"})}));
  CHECK(r.log == Log{c_ehlo, "ready", c_mail, "done mail=250 rcpt=553 data=-", "C: RSET\r\n", "ready"});
}
