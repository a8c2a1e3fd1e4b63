// fuzz_client_session.cpp: the upstream dialogue (smtp::ClientSession) fed a hostile server.
//
// Input layout: byte 0 = client policy (TLS mode, AUTH method, credentials, PIPELINING, tight
// limits), byte 1 = chunking seed (0: all at once), byte 2 = which messages to send and whether
// the TLS handshake fails, byte 3 = how the connection ends and whether the shell reports writes;
// the rest is what the server sends. The fake shell sends the messages when Ready, then QUIT.
//
// Invariants: what goes to the server has only CRLF line ends and each Send ends in CRLF (no
// smuggling through a stored message); nothing happens after Close; Failed is followed by Close;
// a MessageDone has one answer per recipient once MAIL was accepted; no credential (the password,
// or its base64 forms) appears in a failure's detail or reply.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "mailferry/smtp/client_session.hpp"
#include "mailferry/smtp/sasl.hpp"

using namespace mailferry;
using namespace mailferry::smtp;
using mailferry::fuzz::Chunker;
using mailferry::fuzz::Control;

namespace {

constexpr std::string_view user = "relay@example.com";
constexpr std::string_view password = "Tr0ub4dor&3-hunter2";

// Message bodies as the spool may hold them, including every line-ending trick.
const std::string_view bodies[] = {
    "Subject: hi\r\n\r\nHello.\r\n",
    "Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\nend\r\n",
    "Subject: smuggle\r\n\r\nA\n.\nB\r.\rC\r\n.\nD\n.\r\nE",
    "",
    "no final newline",
    "\r\n.\r\n",
};

std::vector<std::string> recipients_for(unsigned variant) {
  switch (variant % 6) {
    case 0: return {"a@example.com"};
    case 1: return {"a@example.com", "b@example.com", "c@example.net"};
    case 2: return {"bad\r\nDATA@example.com", "ok@example.com", "x>y@example.com"};
    case 3: return {};
    case 4: return {"\xc3\xbc@example.com"};
    default: {
      std::vector<std::string> many;
      for (int i = 0; i < 20; ++i) many.push_back("r" + std::to_string(i) + "@example.com");
      return many;
    }
  }
}

struct Harness {
  explicit Harness(ClientPolicy p) : session(std::move(p)) {}

  ClientSession session;
  TimePoint now{std::chrono::hours(1)};
  std::vector<OutgoingMessage> outbox;
  std::vector<std::size_t> recipients_sent;   // per message handed over, its recipient count
  std::size_t done = 0;                       // MessageDone seen
  bool fail_tls = false;
  bool report_writes = false;
  bool quit_sent = false;
  bool failed = false;
  bool closed = false;
  std::string wire;                           // everything sent to the server
  std::vector<std::string> secrets;
  bool has_credentials = false;               // without a username the session knows no secret

  void drain() {
    for (int guard = 0; guard < 100000; ++guard) {
      auto action = session.poll_action();
      if (!action) return;
      std::visit([&](auto& a) { on(a); }, *action);
    }
    FUZZ_CHECK(false, "poll_action() never runs dry");
  }

  // The raw password, and each encoded form of it that actually went to the server (only what was
  // sent can come back in a reply).
  void no_secret(std::string_view text) {
    for (std::size_t i = 0; i < secrets.size(); ++i) {
      if (!has_credentials || (i > 0 && wire.find(secrets[i]) == std::string::npos)) continue;
      FUZZ_CHECK(text.find(secrets[i]) == std::string_view::npos, "credential in a failure report");
    }
  }

  void on(client_action::Send& a) {
    FUZZ_CHECK(!closed, "Send after Close");
    FUZZ_CHECK(a.bytes.size() >= 2 && a.bytes.substr(a.bytes.size() - 2) == "\r\n", "Send does not end in CRLF");
    wire += a.bytes;
    if (report_writes) session.handle_sent(now);
  }
  void on(client_action::MessageDone& a) {
    FUZZ_CHECK(!closed, "MessageDone after Close");
    FUZZ_CHECK(done < recipients_sent.size(), "MessageDone without a message");
    const std::size_t n = recipients_sent[done++];
    const MessageResult& r = a.result;
    FUZZ_CHECK(r.rcpt.size() <= n, "more RCPT answers than recipients");
    if (r.mail && r.mail->positive()) FUZZ_CHECK(r.rcpt.size() == n, "MAIL accepted but a recipient has no answer");
    if (r.data) FUZZ_CHECK(r.mail && r.mail->positive(), "a DATA answer without an accepted MAIL");
  }
  void on(client_action::Ready&) {
    FUZZ_CHECK(!closed, "Ready after Close");
    if (session.state() != ClientState::ready) return;   // a Ready queued ahead of Failed
    if (!outbox.empty()) {
      OutgoingMessage m = std::move(outbox.back());
      outbox.pop_back();
      recipients_sent.push_back(m.recipients.size());
      session.send_message(std::move(m), now);
    } else if (!quit_sent) {
      quit_sent = true;
      session.quit(now);
    }
  }
  void on(client_action::StartTls&) {
    FUZZ_CHECK(!closed, "StartTls after Close");
    if (fail_tls) session.handle_tls_failed("certificate verify failed\r\n: " + std::string(password), now);
    else session.handle_tls_established(now);
  }
  void on(client_action::Failed& a) {
    FUZZ_CHECK(!closed, "Failed after Close");
    FUZZ_CHECK(!failed, "Failed twice");
    failed = true;
    no_secret(a.detail);
    if (a.reply) {
      for (const auto& line : a.reply->lines) no_secret(line);
    }
  }
  void on(client_action::Close&) {
    FUZZ_CHECK(!closed, "Close twice");
    FUZZ_CHECK(session.state() == ClientState::closed, "Close while the session is not closed");
    closed = true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Control ctl(data, size);
  const std::uint8_t p = ctl.byte();
  const std::uint8_t chunk_seed = ctl.byte();
  const std::uint8_t m = ctl.byte();
  const std::uint8_t end = ctl.byte();
  const std::string_view server(reinterpret_cast<const char*>(data) + ctl.used(), size - ctl.used());

  ClientPolicy policy;
  policy.ehlo_name = "relay.example.test";
  static constexpr ClientPolicy::TlsMode modes[] = {ClientPolicy::TlsMode::none, ClientPolicy::TlsMode::starttls,
                                                   ClientPolicy::TlsMode::implicit, ClientPolicy::TlsMode::starttls};
  static constexpr ClientPolicy::AuthMethod methods[] = {ClientPolicy::AuthMethod::auto_, ClientPolicy::AuthMethod::plain,
                                                        ClientPolicy::AuthMethod::login, ClientPolicy::AuthMethod::xoauth2};
  policy.tls = modes[p & 3];
  policy.auth = methods[(p >> 2) & 3];
  if (p & 0x10) {
    policy.username = std::string(user);
    policy.password = Secret(std::string(password));
  }
  policy.allow_auth_without_tls = (p & 0x20) != 0;
  policy.pipelining = (p & 0x40) == 0;
  if (p & 0x80) {
    policy.max_reply_line = 64;
    policy.max_reply_lines = 4;
    policy.max_pipelined_group = 2;
  }

  Harness h(policy);
  h.secrets = {std::string(password), encode_base64(password),
               encode_plain(user, Secret(std::string(password))),
               encode_xoauth2(user, Secret(std::string(password)))};
  h.has_credentials = (p & 0x10) != 0;
  h.fail_tls = (m & 0x80) != 0;
  h.report_writes = (end & 2) != 0;
  for (unsigned i = 0; i < 1u + (m & 3); ++i) {
    OutgoingMessage msg;
    msg.sender = i == 2 ? "" : "sender@example.com";
    msg.recipients = recipients_for((m >> 2) + i);
    msg.body_8bit = (m & 0x20) != 0;
    msg.smtputf8 = (m & 0x40) != 0;
    msg.data = std::string(bodies[(m + i) % std::size(bodies)]);
    h.outbox.push_back(std::move(msg));
  }

  h.session.handle_connected(h.now);
  h.drain();
  Chunker chunks(server, chunk_seed);
  while (!chunks.done() && !h.closed) {
    const std::string_view chunk = chunks.next();
    h.now += std::chrono::milliseconds(100);
    h.session.handle_bytes(fuzz::as_span(chunk), h.now);
    h.drain();
  }
  if (!h.closed) {
    if (const auto deadline = h.session.poll_deadline(); deadline && (end & 1)) {
      h.now = *deadline;
      h.session.handle_timeout(h.now);
    } else {
      h.session.handle_eof(h.now);
    }
    h.drain();
  }
  FUZZ_CHECK(fuzz::crlf_only(h.wire), "bare CR or LF sent to the server");
  FUZZ_CHECK(!h.failed || h.closed, "Failed without Close");
  return 0;
}
