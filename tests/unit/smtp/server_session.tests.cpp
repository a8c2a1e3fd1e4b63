// server_session.tests.cpp: the submission state machine, driven by transcripts fed whole,
// byte by byte and split at every position — the outcome must not depend on how TCP cuts the bytes.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mailferry/smtp/server_session.hpp"

using namespace mailferry;
using namespace mailferry::smtp;

namespace {

struct Outcome {
  std::string sent;                      // every byte the server wrote
  std::vector<Transaction> begun;
  std::vector<std::string> messages;     // committed message bodies
  int aborts = 0;
  int handshakes = 0;
  int flushes = 0;
  std::vector<std::string> auth_users;   // user names the shell was asked to check
  bool closed = false;
  RejectionCounts rejections{};

  bool operator==(const Outcome& o) const {
    return rejections == o.rejections && sent == o.sent && messages == o.messages && aborts == o.aborts && closed == o.closed &&
           begun.size() == o.begun.size() && handshakes == o.handshakes && auth_users == o.auth_users;
  }
};

SessionPolicy trusted_policy() {
  SessionPolicy p;
  p.hostname = "relay.test";
  p.auth_required = false;
  p.peer_trusted = true;
  p.limits.max_message_size = 1000;
  p.limits.max_recipients = 3;
  return p;
}

// Drives a session over `chunks`, committing every message as Q<n>.
Outcome run(const SessionPolicy& policy, const std::vector<std::string>& chunks, bool fail_commit = false) {
  ServerSession s(policy);
  Outcome out;
  std::string current;
  int committed = 0;
  const TimePoint now{};
  s.handle_connected(now);
  auto drain = [&](auto& self) -> void {
    while (auto a = s.poll_action()) {
      std::visit(
          [&](auto& act) {
            using T = std::decay_t<decltype(act)>;
            if constexpr (std::is_same_v<T, server_action::Send>) out.sent += act.bytes;
            else if constexpr (std::is_same_v<T, server_action::BeginMessage>) {
              out.begun.push_back(act.transaction);
              current.clear();
            } else if constexpr (std::is_same_v<T, server_action::AppendData>) current += act.bytes;
            else if constexpr (std::is_same_v<T, server_action::AbortMessage>) ++out.aborts;
            else if constexpr (std::is_same_v<T, server_action::CommitMessage>) {
              if (fail_commit) {
                s.handle_commit_failed(CommitError::no_space, now);
              } else {
                out.messages.push_back(current);
                s.handle_committed("Q" + std::to_string(++committed), now);
              }
            } else if constexpr (std::is_same_v<T, server_action::StartTls>) {
              ++out.handshakes;
              s.handle_tls_established(TlsInfo{"TLSv1.2", "TEST"}, now);
            } else if constexpr (std::is_same_v<T, server_action::Authenticate>) {
              // The test shell knows one user: "user" with password "secret", allowed one sender.
              out.auth_users.push_back(act.user);
              AuthResult r;
              if (act.user == "user" && act.password.reveal() == "secret") {
                r.verdict = AuthResult::Verdict::ok;
                r.allowed_senders = {"user@example.com"};
              } else if (act.user == "locked") {
                r.verdict = AuthResult::Verdict::locked_out;
              }
              s.handle_auth_result(r, now);
            } else if constexpr (std::is_same_v<T, server_action::FlushQueue>) {
              ++out.flushes;
              if (!act.queue_id.empty()) s.handle_queue_result(act.queue_id == "Q9", now);
            } else if constexpr (std::is_same_v<T, server_action::DeleteMessage>) {
              s.handle_queue_result(act.queue_id == "Q9", now);
            } else if constexpr (std::is_same_v<T, server_action::ReportStatus>) {
              s.handle_status({"ready=yes", "queued=2"}, now);
            } else if constexpr (std::is_same_v<T, server_action::Close>) out.closed = true;
          },
          *a);
      (void)self;
    }
  };
  drain(drain);
  for (const auto& c : chunks) {
    s.handle_bytes(std::span<const char>(c.data(), c.size()), now);
    drain(drain);
  }
  out.rejections = s.rejections();
  return out;
}

// The same input three ways: whole, byte by byte, and with one split at every position.
Outcome run_all_ways(const SessionPolicy& policy, const std::string& input, bool fail_commit = false) {
  const Outcome whole = run(policy, {input}, fail_commit);
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  const Outcome by_byte = run(policy, bytes, fail_commit);
  CHECK(by_byte == whole);
  for (std::size_t i = 1; i < input.size(); i += std::max<std::size_t>(1, input.size() / 64)) {
    const Outcome split = run(policy, {input.substr(0, i), input.substr(i)}, fail_commit);
    CAPTURE(i);
    CHECK(split == whole);
  }
  return whole;
}

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a pipelined submission is queued and answered in order", "[smtp][server]") {
  const std::string input =
      "EHLO client.test\r\nMAIL FROM:<a@example.com> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<b@example.net>\r\n"
      "RCPT TO:<c@example.net>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n";
  const auto out = run_all_ways(trusted_policy(), input);
  REQUIRE(out.messages.size() == 1);
  CHECK(out.messages[0] == "Subject: hi\r\n\r\n.dot\r\nbody\r\n");
  REQUIRE(out.begun.size() == 1);
  CHECK(out.begun[0].sender == "a@example.com");
  CHECK(out.begun[0].recipients == std::vector<std::string>{"b@example.net", "c@example.net"});
  CHECK(out.begun[0].body_8bit);
  CHECK(out.sent.find("220 relay.test ESMTP") == 0);
  CHECK(out.sent.find("250-PIPELINING\r\n") != std::string::npos);
  CHECK(out.sent.find("250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n") != std::string::npos);
  CHECK(out.closed);
}

TEST_CASE("the EHLO reply lists the SPEC's extensions and no AUTH or STARTTLS on a plain listener",
          "[smtp][server]") {
  const auto out = run(trusted_policy(), {"EHLO x\r\n"});
  for (const char* ext : {"PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"}) {
    CAPTURE(ext);
    CHECK((out.sent.find(std::string("250-") + ext) != std::string::npos ||
           out.sent.find(std::string("250 ") + ext) != std::string::npos));
  }
  CHECK(out.sent.find("STARTTLS") == std::string::npos);
  CHECK(out.sent.find("AUTH") == std::string::npos);
}

TEST_CASE("sequencing errors get 503 and the session survives", "[smtp][server]") {
  auto [input, expected] = GENERATE(table<std::string, std::string>({
      {"MAIL FROM:<a@x.org>\r\n", "503 5.5.1 Error: send HELO/EHLO first"},
      {"EHLO x\r\nRCPT TO:<b@x.org>\r\n", "503 5.5.1 Error: need MAIL command"},
      {"EHLO x\r\nDATA\r\n", "503 5.5.1 Error: need RCPT command"},
      {"EHLO x\r\nMAIL FROM:<a@x.org>\r\nMAIL FROM:<a@x.org>\r\n", "503 5.5.1 Error: nested MAIL"},
      {"EHLO x\r\nMAIL FROM:<a@x.org>\r\nDATA\r\n", "554 5.5.1 Error: no valid recipients"},
      {"EHLO x\r\nMAIL FROM:a@x.org\r\n", "501 5.1.7"},
      {"EHLO x\r\nMAIL FROM:<a@x.org> FOO=1\r\n", "555 5.5.4"},
      {"EHLO x\r\nMAIL FROM:<a@x.org> SIZE=x\r\n", "501 5.5.4"},
      {"EHLO x\r\nMAIL FROM:<a@x.org> SIZE=5000\r\n", "552 5.3.4"},
      {"EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<>\r\n", "501 5.1.3"},
      {"EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b\x01@x.org>\r\n", "500 5.5.2"},
      {"EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<\xc3\xa9@x.org>\r\n", "553 5.6.7"},
      {"FOO\r\n", "502 5.5.2"},
      {"VRFY a\r\n", "252 2.5.2"},
      {"STARTTLS\r\n", "502 5.5.1"},
      {"AUTH PLAIN\r\n", "503 5.5.1 Error: authentication not enabled"},
  }));
  CAPTURE(input);
  const auto out = run_all_ways(trusted_policy(), input + "NOOP\r\n");
  CHECK(out.sent.find(expected) != std::string::npos);
  CHECK(out.sent.find("250 2.0.0 Ok\r\n") != std::string::npos);   // NOOP still answered
  CHECK(out.messages.empty());
}

TEST_CASE("nobody relays unless trusted on an auth = none listener", "[smtp][server][relay]") {
  auto [auth_required, trusted, expected] = GENERATE(table<bool, bool, std::string>({
      {false, false, "554 5.7.1 <b@x.org>: Relay access denied"},
      {true, true, "530 5.7.0 Authentication required"},
      {true, false, "530 5.7.0 Authentication required"},
  }));
  auto policy = trusted_policy();
  policy.auth_required = auth_required;
  policy.peer_trusted = trusted;
  const auto out = run_all_ways(policy, "EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nhi\r\n.\r\n");
  CHECK(out.sent.find(expected) != std::string::npos);
  CHECK(out.begun.empty());
  CHECK(out.messages.empty());
}

TEST_CASE("too many recipients get 452 4.5.3", "[smtp][server][limits]") {
  const auto out = run_all_ways(trusted_policy(),
                                "EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<1@x.org>\r\nRCPT TO:<2@x.org>\r\n"
                                "RCPT TO:<3@x.org>\r\nRCPT TO:<4@x.org>\r\nDATA\r\nhi\r\n.\r\n");
  CHECK(count(out.sent, "250 2.1.5 Ok") == 3);
  CHECK(out.sent.find("452 4.5.3") != std::string::npos);
  REQUIRE(out.begun.size() == 1);
  CHECK(out.begun[0].recipients.size() == 3);
}

TEST_CASE("an oversized message gets 552 5.3.4 after its data, nothing is committed", "[smtp][server][limits]") {
  const std::string big(1500, 'x');
  const auto out = run_all_ways(trusted_policy(), "EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n" +
                                                      big + "\r\n.\r\nNOOP\r\n");
  CHECK(out.messages.empty());
  CHECK(out.aborts == 1);
  CHECK(out.sent.find("552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n") !=
        std::string::npos);
}

TEST_CASE("a full disk gives 452 4.3.1, never a 250", "[smtp][server][spool]") {
  const auto out = run_all_ways(trusted_policy(), "EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nhi\r\n.\r\n",
                                true);
  CHECK(out.sent.find("452 4.3.1") != std::string::npos);
  CHECK(out.sent.find("queued as") == std::string::npos);
}

TEST_CASE("a command line over the limit is refused without buffering it", "[smtp][server][limits]") {
  auto policy = trusted_policy();
  policy.limits.max_command_line = 64;
  const auto out = run_all_ways(policy, "EHLO x\r\nNOOP " + std::string(500, 'a') + "\r\nNOOP\r\n");
  CHECK(out.sent.find("500 5.5.2 Error: line too long") != std::string::npos);
  CHECK(count(out.sent, "250 2.0.0 Ok") == 1);
}

TEST_CASE("too many errors close the session with 421", "[smtp][server][limits]") {
  std::string input;
  for (int i = 0; i < 20; ++i) input += "BOGUS\r\n";
  const auto out = run(trusted_policy(), {input});
  CHECK(out.sent.find("421 4.7.0") != std::string::npos);
  CHECK(out.closed);
  CHECK(count(out.sent, "502 5.5.2") == 9);
}

TEST_CASE("smuggling sequences never end DATA: exactly one message, the rest is text", "[smtp][server][smuggling]") {
  const std::string seq = GENERATE(as<std::string>{}, "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\n.\r",
                                   "\r.\r\n", "\r\n.\r", "\r\n.\r\r\n", "\n\n.\n\n");
  CAPTURE(seq);
  const std::string input = "EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nSubject: s\r\n\r\nbefore" +
                            seq + "MAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@x.org>\r\nDATA\r\nsmuggled\r\n.\r\n";
  const auto out = run_all_ways(trusted_policy(), input);
  REQUIRE(out.messages.size() == 1);
  const auto& m = out.messages[0];
  CHECK(m.find("RCPT TO:<victim@x.org>") != std::string::npos);   // stayed inside the message
  CHECK(out.begun.size() == 1);
  // Normalised: every CR is followed by LF and every LF preceded by CR.
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r') CHECK((i + 1 < m.size() && m[i + 1] == '\n'));
    if (m[i] == '\n') CHECK((i > 0 && m[i - 1] == '\r'));
  }
}

TEST_CASE("an idle client is cut with 421 4.4.2 at the deadline", "[smtp][server][timeout]") {
  ServerSession s(trusted_policy());
  const TimePoint t0{};
  s.handle_connected(t0);
  while (s.poll_action()) {}
  REQUIRE(s.poll_deadline());
  CHECK(*s.poll_deadline() == t0 + std::chrono::minutes(5));
  s.handle_timeout(t0 + std::chrono::minutes(4));
  CHECK(!s.poll_action());
  s.handle_timeout(t0 + std::chrono::minutes(5));
  auto a = s.poll_action();
  REQUIRE(a);
  CHECK(std::get<server_action::Send>(*a).bytes.rfind("421 4.4.2", 0) == 0);
  CHECK(std::holds_alternative<server_action::Close>(*s.poll_action()));
  CHECK(s.state() == State::closed);
}

TEST_CASE("EOF inside DATA aborts the message", "[smtp][server]") {
  ServerSession s(trusted_policy());
  const TimePoint t0{};
  s.handle_connected(t0);
  const std::string in = "EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\npartial";
  s.handle_bytes(std::span<const char>(in.data(), in.size()), t0);
  while (s.poll_action()) {}
  s.handle_eof(t0);
  CHECK(std::holds_alternative<server_action::AbortMessage>(*s.poll_action()));
  CHECK(std::holds_alternative<server_action::Close>(*s.poll_action()));
}

namespace {

SessionPolicy submission_policy() {
  SessionPolicy p;
  p.hostname = "relay.test";
  p.auth_required = true;
  p.peer_trusted = false;
  p.starttls_offered = true;
  p.auth_offered = true;
  return p;
}

// base64("\0user\0secret"), base64("user"), base64("secret")
const std::string plain_ok = "AHVzZXIAc2VjcmV0";
const std::string plain_bad = "AHVzZXIAd3Jvbmc=";   // "\0user\0wrong"

}  // namespace

TEST_CASE("STARTTLS then AUTH PLAIN then a message: the submission path", "[smtp][server][tls][auth]") {
  const std::string input = "EHLO c\r\nSTARTTLS\r\n";
  // Whatever follows STARTTLS before the handshake is dropped (RFC 3207 §4.2, CVE-2011-0411).
  const auto out = run(submission_policy(), {input + "MAIL FROM:<injected@x.org>\r\n",
                                              "EHLO c\r\nAUTH PLAIN " + plain_ok + "\r\n"
                                              "MAIL FROM:<user@example.com>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nhi\r\n.\r\n"});
  CHECK(out.handshakes == 1);
  CHECK(out.sent.find("injected") == std::string::npos);
  CHECK(count(out.sent, "503") == 0);
  CHECK(out.sent.find("220 2.0.0 Ready to start TLS") != std::string::npos);
  CHECK(out.sent.find("235 2.7.0") != std::string::npos);
  REQUIRE(out.begun.size() == 1);
  CHECK(out.begun[0].user == "user");
  CHECK(out.begun[0].protocol == "ESMTPSA");
  CHECK(out.messages.size() == 1);
}

TEST_CASE("AUTH is advertised and accepted only over TLS", "[smtp][server][tls][auth]") {
  const auto before = run(submission_policy(), {"EHLO c\r\nAUTH PLAIN " + plain_ok + "\r\nMAIL FROM:<user@example.com>\r\n"});
  const auto ehlo_reply = before.sent.substr(0, before.sent.find("538"));
  CHECK(ehlo_reply.find("AUTH") == std::string::npos);
  CHECK(ehlo_reply.find("250 STARTTLS\r\n") != std::string::npos);
  CHECK(before.sent.find("538 5.7.11") != std::string::npos);
  CHECK(before.auth_users.empty());
  CHECK(before.sent.find("530 5.7.0 Authentication required") != std::string::npos);

  const auto after = run(submission_policy(), {"EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\n"});
  const auto second_ehlo = after.sent.substr(after.sent.find("Ready to start TLS"));
  CHECK(second_ehlo.find("250 AUTH PLAIN LOGIN") != std::string::npos);
  CHECK(second_ehlo.find("STARTTLS\r\n") == std::string::npos);   // not offered twice
}

TEST_CASE("AUTH dialogues: PLAIN with and without initial response, LOGIN, cancel, bad", "[smtp][server][auth]") {
  auto [dialogue, expected, users] = GENERATE(table<std::string, std::string, std::size_t>({
      {"AUTH PLAIN " + plain_ok + "\r\n", "235 2.7.0", 1},
      {"AUTH PLAIN\r\n" + plain_ok + "\r\n", "334 \r\n235 2.7.0", 1},
      {"AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n", "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0", 1},
      {"AUTH LOGIN dXNlcg==\r\nc2VjcmV0\r\n", "334 UGFzc3dvcmQ6\r\n235 2.7.0", 1},
      {"AUTH PLAIN\r\n*\r\n", "501 5.7.0 Authentication cancelled", 0},
      {"AUTH PLAIN " + plain_bad + "\r\n", "535 5.7.8", 1},
      {"AUTH PLAIN !!!\r\n", "501 5.5.2", 0},
      {"AUTH CRAM-MD5\r\n", "504 5.5.4", 0},
      {"AUTH PLAIN AGxvY2tlZAB4\r\n", "421 4.7.0", 1},   // "\0locked\0x": the shell says locked out
  }));
  CAPTURE(dialogue);
  const auto r = run(submission_policy(), {"EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\n" + dialogue});
  CHECK(r.sent.find(expected) != std::string::npos);
  CHECK(r.auth_users.size() == users);
}

TEST_CASE("allowed_senders limits the envelope sender of an authenticated user", "[smtp][server][auth]") {
  const std::string start = "EHLO c\r\nAUTH PLAIN " + plain_ok + "\r\n";
  const auto ok = run(submission_policy(), {"EHLO c\r\nSTARTTLS\r\n", start + "MAIL FROM:<user@example.com>\r\n"});
  CHECK(ok.sent.find("250 2.1.0 Ok") != std::string::npos);
  const auto bad = run(submission_policy(), {"EHLO c\r\nSTARTTLS\r\n", start + "MAIL FROM:<boss@example.com>\r\n"});
  CHECK(bad.sent.find("553 5.7.1 <boss@example.com>: Sender address rejected") != std::string::npos);
}

TEST_CASE("an implicit-TLS listener greets only after the handshake", "[smtp][server][tls]") {
  auto policy = submission_policy();
  policy.starttls_offered = false;
  policy.implicit_tls = true;
  ServerSession s(policy);
  const TimePoint t0{};
  s.handle_connected(t0);
  CHECK(!s.poll_action());
  CHECK(s.state() == State::tls_wait);
  s.handle_tls_established(TlsInfo{"TLSv1.2", "X"}, t0);
  auto a = s.poll_action();
  REQUIRE(a);
  CHECK(std::get<server_action::Send>(*a).bytes.rfind("220 relay.test", 0) == 0);
  const std::string ehlo = "EHLO c\r\n";
  s.handle_bytes(std::span<const char>(ehlo.data(), ehlo.size()), t0);
  const auto reply = std::get<server_action::Send>(*s.poll_action()).bytes;
  CHECK(reply.find("AUTH PLAIN LOGIN") != std::string::npos);
  CHECK(reply.find("STARTTLS") == std::string::npos);
}

TEST_CASE("ETRN starts a queue run only on the local sendmail socket", "[smtp][server]") {
  auto policy = trusted_policy();
  const auto tcp = run(policy, {"EHLO x\r\nETRN\r\n"});
  CHECK(tcp.sent.find("502 5.5.2") != std::string::npos);
  CHECK(tcp.flushes == 0);
  policy.queue_control = true;
  const auto local = run(policy, {"EHLO x\r\nETRN\r\n"});
  CHECK(local.sent.find("250 2.0.0 Queue run started") != std::string::npos);
  CHECK(local.flushes == 1);
}

TEST_CASE("XSTAT reports the daemon's state only on the local socket", "[smtp][server]") {
  auto policy = trusted_policy();
  policy.queue_control = true;
  const auto out = run(policy, {"EHLO x\r\nXSTAT\r\nXSTAT now\r\nNOOP\r\n"});
  CHECK(out.sent.find("250-2.0.0 ready=yes\r\n250 2.0.0 queued=2\r\n") != std::string::npos);
  CHECK(out.sent.find("501") != std::string::npos);        // no argument
  CHECK(count(out.sent, "250 2.0.0 Ok\r\n") == 1);        // the session goes on: NOOP
  const auto tcp = run(trusted_policy(), {"EHLO x\r\nXSTAT\r\n"});
  CHECK(tcp.sent.find("502 5.5.2") != std::string::npos);
  CHECK(tcp.sent.find("ready=") == std::string::npos);
}

TEST_CASE("ETRN #id and XDEL name one message on the local socket", "[smtp][server]") {
  auto policy = trusted_policy();
  policy.queue_control = true;
  const auto out = run(policy, {"EHLO x\r\nETRN #Q9\r\nETRN #Q8\r\nXDEL Q9\r\nXDEL Q8\r\n"});
  CHECK(count(out.sent, "250 2.0.0 Ok\r\n") == 2);
  CHECK(count(out.sent, "550 5.1.0") == 2);
  const auto tcp = run(trusted_policy(), {"EHLO x\r\nXDEL Q9\r\n"});
  CHECK(tcp.sent.find("502 5.5.2") != std::string::npos);
}

namespace {
const std::string tx = "EHLO x\r\nMAIL FROM:<a@x.org>\r\n";
}

TEST_CASE("each refusal is counted once under its /metrics reason", "[smtp][server][metrics]") {
  auto [auth_required, trusted, input, reason] = GENERATE(table<bool, bool, std::string, Rejection>({
      {false, false, tx + "RCPT TO:<b@x.org>\r\n", Rejection::relay_denied},
      {true, false, tx, Rejection::auth_required},
      {false, true, "EHLO x\r\nMAIL FROM:<a@x.org> SIZE=5000\r\n", Rejection::size},
      {false, true, tx + "RCPT TO:<b@x.org>\r\nDATA\r\n" + std::string(1500, 'x') + "\r\n.\r\n", Rejection::size},
      {false, true, tx + "RCPT TO:<1@x.org>\r\nRCPT TO:<2@x.org>\r\nRCPT TO:<3@x.org>\r\nRCPT TO:<4@x.org>\r\n",
       Rejection::recipients},
      {false, true, "EHLO x\r\nBOGUS\r\n", Rejection::protocol},
      {false, true, "MAIL FROM:<a@x.org>\r\n", Rejection::protocol},
  }));
  CAPTURE(input);
  auto policy = trusted_policy();
  policy.auth_required = auth_required;
  policy.peer_trusted = trusted;
  const auto out = run_all_ways(policy, input);
  for (std::size_t i = 0; i < rejection_kinds; ++i) {
    CAPTURE(to_string(static_cast<Rejection>(i)));
    CHECK(out.rejections[i] == (i == static_cast<std::size_t>(reason) ? 1u : 0u));
  }
}

TEST_CASE("refusals of AUTH: a wrong password is not a rejection, a lock-out is rate", "[smtp][server][metrics]") {
  const auto bad = run(submission_policy(), {"EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\nAUTH PLAIN " + plain_bad + "\r\n"});
  CHECK(bad.rejections == RejectionCounts{});
  const auto locked = run(submission_policy(), {"EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\nAUTH PLAIN AGxvY2tlZAB4\r\n"});
  CHECK(locked.rejections[static_cast<std::size_t>(Rejection::rate)] == 1);
  const auto sender = run(submission_policy(), {"EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\nAUTH PLAIN " + plain_ok +
                                                "\r\nMAIL FROM:<boss@example.com>\r\n"});
  CHECK(sender.rejections[static_cast<std::size_t>(Rejection::sender_not_allowed)] == 1);
}

namespace {
// Feeds `text` one byte at a time, `gap` apart from `start`; returns the time after the last byte.
TimePoint dribble(ServerSession& s, const std::string& text, TimePoint start, std::chrono::milliseconds gap) {
  TimePoint t = start;
  for (char c : text) {
    s.handle_bytes(std::span<const char>(&c, 1), t);
    s.handle_timeout(t);
    t += gap;
  }
  return t;
}

bool cut_by_timeout(ServerSession& s) {
  bool got = false;
  while (auto a = s.poll_action()) {
    if (auto* send = std::get_if<server_action::Send>(&*a)) got = got || send->bytes.find("421 4.4.2") != std::string::npos;
  }
  return got && s.state() == State::closed;
}
}  // namespace

TEST_CASE("slowloris: bytes of an unfinished command line do not move the deadline", "[smtp][server][timeout]") {
  ServerSession s(trusted_policy());
  const TimePoint t0{};
  s.handle_connected(t0);
  while (s.poll_action()) {}
  // "EHLO x" one byte a minute: the 5 minutes run from the greeting and are not renewed.
  const auto t = dribble(s, "EHLO xxxxxxxx", t0, std::chrono::minutes(1));
  CHECK(t > t0 + std::chrono::minutes(5));
  CHECK(cut_by_timeout(s));
}

TEST_CASE("complete command lines renew the command deadline", "[smtp][server][timeout]") {
  ServerSession s(trusted_policy());
  TimePoint t{};
  s.handle_connected(t);
  for (int i = 0; i < 6; ++i) {   // a NOOP every 4 minutes for 24 minutes
    t += std::chrono::minutes(4);
    s.handle_timeout(t);
    const std::string noop = "NOOP\r\n";
    s.handle_bytes(std::span<const char>(noop.data(), noop.size()), t);
  }
  CHECK(s.state() != State::closed);
  REQUIRE(s.poll_deadline());
  CHECK(*s.poll_deadline() == t + std::chrono::minutes(5));
}

TEST_CASE("DATA must average the minimum rate once its first timeout has passed", "[smtp][server][timeout]") {
  const std::string start = "EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n";
  SECTION("a byte every 4 minutes is cut 5 minutes after DATA") {
    ServerSession s(trusted_policy());
    const TimePoint t0{};
    s.handle_connected(t0);
    s.handle_bytes(std::span<const char>(start.data(), start.size()), t0);
    while (s.poll_action()) {}
    dribble(s, "abc", t0 + std::chrono::minutes(4), std::chrono::minutes(4));
    bool aborted = false, cut = false;
    while (auto a = s.poll_action()) {
      aborted = aborted || std::holds_alternative<server_action::AbortMessage>(*a);
      if (auto* send = std::get_if<server_action::Send>(&*a)) cut = cut || send->bytes.rfind("421 4.4.2", 0) == 0;
    }
    CHECK(aborted);
    CHECK(cut);
  }
  SECTION("2 KiB a second for 10 minutes is never cut, and its message is committed") {
    auto policy = trusted_policy();
    policy.limits.max_message_size = 10'000'000;
    ServerSession s(policy);
    TimePoint t{};
    s.handle_connected(t);
    s.handle_bytes(std::span<const char>(start.data(), start.size()), t);
    const std::string chunk = std::string(2046, 'x') + "\r\n";
    for (int i = 0; i < 600; ++i) {
      t += std::chrono::seconds(1);
      s.handle_timeout(t);
      s.handle_bytes(std::span<const char>(chunk.data(), chunk.size()), t);
    }
    const std::string end = ".\r\n";
    s.handle_bytes(std::span<const char>(end.data(), end.size()), t);
    bool committed = false;
    while (auto a = s.poll_action()) committed = committed || std::holds_alternative<server_action::CommitMessage>(*a);
    CHECK(committed);
  }
}
