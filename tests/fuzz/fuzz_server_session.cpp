// fuzz_server_session.cpp: the submission protocol (smtp::ServerSession) fed hostile client bytes.
//
// Input layout: byte 0 = listener policy flags, byte 1 = chunking seed (0: all at once),
// byte 2 = seed of the fake shell's decisions (0: every outcome succeeds, answered at once);
// the rest is what the client sends. The fake shell answers every action the way serve.cpp does —
// TLS handshakes, password checks, spool commits, queue commands — succeeding or failing as the
// seed says, sometimes only after more client bytes have arrived (pipelining across a wait).
//
// Invariants: every byte sent is a well-formed reply (3-digit code, one code per multi-line reply,
// CRLF, under 512 bytes, no control bytes); nothing is sent after Close; message actions come in
// order (Begin, Append…, then Commit or Abort); the stored message has only CRLF line ends; the
// envelope holds no control bytes and respects the limits.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "mailferry/smtp/server_session.hpp"

using namespace mailferry;
using namespace mailferry::smtp;
using mailferry::fuzz::Chunker;
using mailferry::fuzz::Control;

namespace {

constexpr std::string_view hostname = "mx.example.test";

// One Send's bytes: complete replies, each line "ddd-text" or "ddd text" (or a bare "ddd"), CRLF.
void check_replies(std::string_view bytes) {
  FUZZ_CHECK(!bytes.empty(), "empty Send");
  std::string_view continuing_code;   // the code of an unfinished multi-line reply
  while (!bytes.empty()) {
    const auto end = bytes.find("\r\n");
    FUZZ_CHECK(end != std::string_view::npos, "reply line without CRLF");
    const std::string_view line = bytes.substr(0, end);
    bytes.remove_prefix(end + 2);
    FUZZ_CHECK(line.size() + 2 <= 512, "reply line longer than 512 bytes (RFC 5321 4.5.3.1.5)");
    FUZZ_CHECK(line.size() >= 3, "reply line shorter than its code");
    for (int i = 0; i < 3; ++i) FUZZ_CHECK(line[i] >= '0' && line[i] <= '9', "reply code is not 3 digits");
    FUZZ_CHECK(line[0] >= '2' && line[0] <= '5', "reply code outside 2xx-5xx");
    FUZZ_CHECK(line.size() == 3 || line[3] == ' ' || line[3] == '-', "no SP or '-' after the code");
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u >= 0x20 && u != 0x7f, "control byte in a reply line");
    }
    if (!continuing_code.empty()) FUZZ_CHECK(line.substr(0, 3) == continuing_code, "code changes inside a multi-line reply");
    continuing_code = line.size() > 3 && line[3] == '-' ? line.substr(0, 3) : std::string_view{};
  }
  FUZZ_CHECK(continuing_code.empty(), "Send ends inside a multi-line reply");
}

bool clean_text(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

struct Harness {
  explicit Harness(SessionPolicy p, std::uint8_t outcome_seed)
      : policy(p), session(std::move(p)), decide(std::string_view{}, outcome_seed), faults(outcome_seed != 0) {}

  SessionPolicy policy;
  ServerSession session;
  Chunker decide;                     // only its choice() is used
  bool faults;
  TimePoint now{std::chrono::hours(1)};
  bool closed = false;                // Close seen
  bool dead = false;                  // the shell dropped the connection (failed TLS handshake)
  bool in_message = false;            // between BeginMessage and Commit/Abort
  std::string message;                // the AppendData bytes of the message being received
  std::vector<std::function<void()>> later;   // answers deferred until more bytes arrived

  // With faults on, 1 in `n` decisions goes the bad way.
  bool bad(std::uint32_t n) { return faults && decide.choice() % n == 0; }

  void answer(std::function<void()> f) {
    if (faults && decide.choice() % 3 == 0) later.push_back(std::move(f));
    else f();
  }

  void run_later() {
    auto pending = std::move(later);
    later.clear();
    for (auto& f : pending) f();
    drain();
  }

  void drain() {
    for (int guard = 0; guard < 100000; ++guard) {
      auto action = session.poll_action();
      if (!action) return;
      std::visit([&](auto& a) { on(a); }, *action);
    }
    FUZZ_CHECK(false, "poll_action() never runs dry");
  }

  void on(server_action::Send& a) {
    FUZZ_CHECK(!closed, "Send after Close");
    check_replies(a.bytes);
  }
  void on(server_action::BeginMessage& a) {
    FUZZ_CHECK(!closed, "BeginMessage after Close");
    FUZZ_CHECK(!in_message, "BeginMessage inside a message");
    const Transaction& t = a.transaction;
    FUZZ_CHECK(!t.recipients.empty(), "message without recipients");
    FUZZ_CHECK(t.recipients.size() <= policy.limits.max_recipients, "more recipients than max_recipients");
    FUZZ_CHECK(clean_text(t.sender) && t.sender.size() <= policy.limits.max_path, "bad sender in the envelope");
    for (const auto& r : t.recipients) {
      FUZZ_CHECK(!r.empty() && clean_text(r) && r.size() <= policy.limits.max_path, "bad recipient in the envelope");
    }
    FUZZ_CHECK(clean_text(t.helo), "control byte in the HELO name");
    FUZZ_CHECK(!policy.auth_required || !t.user.empty(), "message without AUTH on an auth = required listener");
    FUZZ_CHECK(!t.user.empty() || policy.peer_trusted, "relay for an unauthenticated, untrusted client");
    in_message = true;
    message.clear();
  }
  void on(server_action::AppendData& a) {
    FUZZ_CHECK(in_message, "AppendData outside a message");
    message += a.bytes;
    FUZZ_CHECK(message.size() <= policy.limits.max_message_size, "stored more than max_message_size");
  }
  void on(server_action::CommitMessage&) {
    FUZZ_CHECK(in_message, "CommitMessage outside a message");
    FUZZ_CHECK(fuzz::crlf_only(message), "bare CR or LF in the stored message (smuggling)");
    in_message = false;
    answer([this] {
      if (!bad(4)) return session.handle_committed("4XbT2qZ7mN1", now);
      session.handle_commit_failed(decide.choice() % 2 ? CommitError::no_space : CommitError::io, now);
    });
  }
  void on(server_action::AbortMessage&) {
    FUZZ_CHECK(in_message, "AbortMessage outside a message");
    in_message = false;
  }
  void on(server_action::StartTls&) {
    FUZZ_CHECK(!closed, "StartTls after Close");
    if (bad(5)) {   // the handshake failed: the shell closes the connection
      dead = true;
      return;
    }
    answer([this] { session.handle_tls_established(TlsInfo{"TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"}, now); });
  }
  void on(server_action::Authenticate& a) {
    FUZZ_CHECK(!closed, "Authenticate after Close");
    FUZZ_CHECK(a.mechanism == "PLAIN" || a.mechanism == "LOGIN", "unknown mechanism asked for");
    FUZZ_CHECK(session.secure(), "credentials checked over plaintext");
    // Like the real check: only configured users (short names) can succeed.
    const bool known = a.user == "alice" || a.user == "bob@example.com";
    AuthResult r;
    if (known && (a.password.reveal() == "secret" || !bad(2))) {
      r.verdict = AuthResult::Verdict::ok;
      if (a.user == "bob@example.com") r.allowed_senders = {"bob@example.com", "@example.org"};
    } else {
      static constexpr AuthResult::Verdict failures[] = {AuthResult::Verdict::bad_credentials,
                                                         AuthResult::Verdict::locked_out,
                                                         AuthResult::Verdict::temporary_failure};
      r.verdict = faults ? failures[decide.choice() % 3] : AuthResult::Verdict::bad_credentials;
    }
    answer([this, r] { session.handle_auth_result(r, now); });
  }
  void on(server_action::FlushQueue& a) {
    FUZZ_CHECK(policy.queue_control, "ETRN honoured off the local socket");
    if (a.queue_id.empty()) return;
    answer([this] { session.handle_queue_result(!bad(2), now); });
  }
  void on(server_action::DeleteMessage&) {
    FUZZ_CHECK(policy.queue_control, "XDEL honoured off the local socket");
    answer([this] { session.handle_queue_result(!bad(2), now); });
  }
  void on(server_action::ReportStatus&) {
    FUZZ_CHECK(policy.queue_control, "XSTAT honoured off the local socket");
    std::vector<std::string> lines;
    if (!bad(3)) lines = {"ready=yes", "queued=3", "deferred=1"};
    answer([this, lines] { session.handle_status(lines, now); });
  }
  void on(server_action::Close&) {
    FUZZ_CHECK(!closed, "Close twice");
    FUZZ_CHECK(session.state() == State::closed, "Close while the session is not closed");
    closed = true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Control ctl(data, size);
  const std::uint8_t flags = ctl.byte();
  const std::uint8_t chunk_seed = ctl.byte();
  const std::uint8_t outcome_seed = ctl.byte();
  const std::string_view client(reinterpret_cast<const char*>(data) + ctl.used(), size - ctl.used());

  SessionPolicy policy;
  policy.hostname = std::string(hostname);
  policy.auth_required = (flags & 0x01) != 0;
  policy.peer_trusted = (flags & 0x02) != 0;
  policy.starttls_offered = (flags & 0x04) != 0;
  policy.implicit_tls = (flags & 0x08) != 0;
  policy.auth_offered = (flags & 0x10) != 0;
  policy.queue_control = (flags & 0x20) != 0;
  if (flags & 0x40) {   // tight limits, so that every limit is reached by short inputs
    policy.limits.max_command_line = 80;
    policy.limits.max_path = 40;
    policy.limits.max_recipients = 3;
    policy.limits.max_message_size = 64;
    policy.limits.max_errors = 4;
  }
  const bool shutdown_midway = (flags & 0x80) != 0;

  Harness h(policy, outcome_seed);
  h.session.handle_connected(h.now);
  if (policy.implicit_tls) h.session.handle_tls_established(TlsInfo{"TLSv1.3", "TLS_AES_128_GCM_SHA256"}, h.now);
  h.drain();

  Chunker chunks(client, chunk_seed);
  for (int n = 0; !chunks.done() && !h.closed && !h.dead; ++n) {
    const std::string_view chunk = chunks.next();
    // Mostly a quick client; with faults, sometimes a long pause (slowloris, the DATA rate floor).
    h.now += h.bad(8) ? std::chrono::milliseconds(h.decide.choice() % (12 * 60 * 1000)) : std::chrono::milliseconds(250);
    // The shell's read times out first when the deadline has passed.
    if (const auto deadline = h.session.poll_deadline(); deadline && h.now >= *deadline) {
      h.session.handle_timeout(h.now);
      h.drain();
      FUZZ_CHECK(h.closed, "a passed deadline did not end the session");
      break;
    }
    // The shell reads only in states that take bytes; TLS handshake bytes are not SMTP.
    if (h.session.state() != State::tls_handshake) h.session.handle_bytes(fuzz::as_span(chunk), h.now);
    h.drain();
    h.run_later();
    if (shutdown_midway && n == 1) {
      h.session.handle_shutdown(h.now);
      h.drain();
    }
  }
  h.run_later();
  if (!h.closed && !h.dead) {
    // The connection ends: by the client, or by the session's own deadline.
    if (const auto deadline = h.session.poll_deadline(); deadline && (chunk_seed & 1)) {
      h.now = *deadline;
      h.session.handle_timeout(h.now);
      h.drain();
      FUZZ_CHECK(h.closed, "a passed deadline did not end the session");
    } else {
      h.session.handle_eof(h.now);
    }
    h.drain();
    h.run_later();
  }
  return 0;
}
