// client_session.cpp: the upstream dialogue. Every transition happens in on_reply() and the on_*
// handler of the state that sent the command being answered; inputs after Close are ignored.
#include "mailferry/smtp/client_session.hpp"

#include "mailferry/smtp/sasl.hpp"

#include <cassert>
#include <charconv>
#include <string>
#include <utility>

namespace mailferry::smtp {

namespace {

// Calls `line(content)` for each line of `data`. CRLF, a bare CR and a bare LF all end a line, and
// a last line without an ending is still a line: the caller gives every line a CRLF.
template <class F>
void for_each_line(std::string_view data, F&& line) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::size_t end = data.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      line(data.substr(pos));
      return;
    }
    line(data.substr(pos, end - pos));
    pos = end + ((data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1);
  }
}

// RFC 1870 §3: the declared size counts the message with CRLF line endings, without the
// dot-stuffing and without the terminating ".".
std::uint64_t wire_size(std::string_view data) {
  std::uint64_t size = 0;
  for_each_line(data, [&](std::string_view content) { size += content.size() + 2; });
  return size;
}

// The DATA payload: every line CRLF-terminated and dot-stuffed (RFC 5321 §4.5.2), then ".\r\n".
// Normalising bare CR and bare LF here as well as at receipt means that no byte sequence in a
// stored message can look like the end of data to the upstream (SMTP smuggling).
std::string encode_body(std::string_view data) {
  std::string out;
  out.reserve(data.size() + data.size() / 32 + 8);
  for_each_line(data, [&](std::string_view content) {
    if (!content.empty() && content.front() == '.') out += '.';
    out += content;
    out += "\r\n";
  });
  out += ".\r\n";
  return out;
}

// An address that would break out of "<…>" or the command line cannot be sent at all. The spool
// should never hold one; checking here keeps a corrupt queue file from injecting commands.
bool sendable_address(std::string_view address) {
  for (char c : address) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '<' || c == '>') return false;
  }
  return true;
}

std::string rcpt_command(std::string_view address) { return "RCPT TO:<" + std::string(address) + ">\r\n"; }

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Text from the other side made fit for one log line: control bytes become '?', length bounded.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 300));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

const char* mechanism_name(ClientPolicy::AuthMethod m) {
  switch (m) {
    case ClientPolicy::AuthMethod::plain: return "PLAIN";
    case ClientPolicy::AuthMethod::login: return "LOGIN";
    case ClientPolicy::AuthMethod::xoauth2: return "XOAUTH2";
    case ClientPolicy::AuthMethod::auto_: return "(auto)";
  }
  return "";
}

std::optional<Duration> reply_timeout(const ClientPolicy& p, ClientState s) {
  switch (s) {
    case ClientState::greeting: return p.greeting_timeout;
    case ClientState::tls_handshake: return p.tls_handshake_timeout;
    case ClientState::ehlo:
    case ClientState::helo:
    case ClientState::starttls:
    case ClientState::auth:
    case ClientState::auth_username:
    case ClientState::auth_final:
    case ClientState::mail:
    case ClientState::rcpt:
    case ClientState::rset:
    case ClientState::quit: return p.command_timeout;
    case ClientState::data: return p.data_init_timeout;
    case ClientState::data_body:
    case ClientState::data_end: return p.data_end_timeout;
    case ClientState::ready:
    case ClientState::closed: return std::nullopt;
  }
  return std::nullopt;
}

const char* awaited(ClientState s) {
  switch (s) {
    case ClientState::greeting: return "the greeting";
    case ClientState::ehlo: return "the EHLO reply";
    case ClientState::helo: return "the HELO reply";
    case ClientState::starttls: return "the STARTTLS reply";
    case ClientState::tls_handshake: return "the TLS handshake";
    case ClientState::auth: return "the AUTH reply";
    case ClientState::auth_username: return "the AUTH LOGIN password prompt";
    case ClientState::auth_final: return "the final AUTH reply";
    case ClientState::mail: return "the MAIL FROM reply";
    case ClientState::rcpt: return "the RCPT TO reply";
    case ClientState::data: return "the DATA reply";
    case ClientState::data_body:
    case ClientState::data_end: return "the reply to the end of data";
    case ClientState::rset: return "the RSET reply";
    case ClientState::quit: return "the QUIT reply";
    case ClientState::ready: return "the next command (idle)";
    case ClientState::closed: return "nothing (closed)";
  }
  return "";
}

}  // namespace

ClientSession::ClientSession(ClientPolicy policy)
    : policy_(std::move(policy)),
      parser_(policy_.max_reply_line, policy_.max_reply_lines),
      secure_(policy_.tls == ClientPolicy::TlsMode::implicit) {}

void ClientSession::handle_connected(TimePoint now) {
  if (state_ != ClientState::greeting) return;
  deadline_ = now + policy_.greeting_timeout;
}

void ClientSession::handle_bytes(std::span<const char> in, TimePoint now) {
  if (state_ == ClientState::closed) return;
  if (state_ == ClientState::tls_handshake) {
    // Only the shell's TLS layer may read now. Plaintext reaching us here was sent after the 220 and
    // before the handshake: whatever it says must not be taken for an answer from inside TLS.
    if (in.empty()) return;
    return fail(FailureClass::protocol, std::nullopt,
                "the server sent plaintext after its 220 to STARTTLS, before the TLS handshake "
                "(command injection, CVE-2011-0411 style); nothing more was sent");
  }
  parser_.feed(std::string_view(in.data(), in.size()));
  while (state_ != ClientState::closed) {
    auto next = parser_.next();
    if (!next) {
      // Nothing is lost by a garbled answer to QUIT: every message was reported before quit().
      if (state_ == ClientState::quit) return close();
      return fail(FailureClass::protocol, std::nullopt, "malformed reply: " + next.error().message);
    }
    if (!next->has_value()) return;
    on_reply(std::move(**next), now);
  }
}

void ClientSession::handle_eof(TimePoint /*now*/) {
  if (state_ == ClientState::closed) return;
  if (state_ == ClientState::quit) return close();   // RFC 5321 §4.1.1.10 allows closing before 221
  // Mid-message there is deliberately no MessageDone: the caller treats the message as not
  // delivered, which is right even if the server had already taken it (at least once, never less).
  fail(FailureClass::connection, std::nullopt,
       std::string("connection closed by the server while waiting for ") + awaited(state_));
}

void ClientSession::handle_timeout(TimePoint now) {
  if (state_ == ClientState::closed || !deadline_ || now < *deadline_) return;   // early or stale timer
  if (state_ == ClientState::quit) return close();
  const FailureClass cls = state_ == ClientState::tls_handshake ? FailureClass::tls : FailureClass::connection;
  fail(cls, std::nullopt, std::string("timed out waiting for ") + awaited(state_));
}

void ClientSession::handle_sent(TimePoint now) {
  if (state_ == ClientState::data_body) state_ = ClientState::data_end;
  if (auto timeout = reply_timeout(policy_, state_)) deadline_ = now + *timeout;
}

void ClientSession::handle_tls_established(TimePoint now) {
  if (state_ != ClientState::tls_handshake) return;
  secure_ = true;
  // RFC 3207 §4.2: everything learned before TLS is discarded, and the client asks again. The parser
  // is empty (any byte after the 220 failed the session), but a fresh one makes that evident.
  parser_ = ReplyParser(policy_.max_reply_line, policy_.max_reply_lines);
  extensions_.clear();
  size_limit_.reset();
  send(ClientState::ehlo, "EHLO " + policy_.ehlo_name + "\r\n", now);
}

void ClientSession::handle_tls_failed(std::string why, TimePoint /*now*/) {
  if (state_ != ClientState::tls_handshake) return;
  why = printable(why);
  // 4.7.5: cryptographic failure (RFC 3463 §3.8), transient like Postfix's TLS failures.
  fail(FailureClass::tls, make_reply(454, "4.7.5", "TLS handshake with the upstream failed: " + why),
       "TLS handshake failed: " + why);
}

void ClientSession::send_message(OutgoingMessage m, TimePoint now) {
  if (state_ == ClientState::closed) return;
  assert(state_ == ClientState::ready && "send_message() only after a Ready action");
  if (state_ != ClientState::ready) return;

  message_ = std::move(m);
  result_ = MessageResult{};
  next_rcpt_ = 0;
  accepted_rcpt_ = 0;
  pipelined_ = false;
  pending_.clear();
  reported_ = false;
  if (message_.recipients.empty()) return finish_message(false, now);   // nothing to ask for
  if (auto refusal = check_message()) {
    result_.mail = std::move(*refusal);
    return finish_message(false, now);
  }

  std::string mail = "MAIL FROM:<" + message_.sender + ">";
  if (has_extension("SIZE")) mail += " SIZE=" + std::to_string(wire_size(message_.data));
  // Without 8BITMIME the body goes as it is, as Postfix does by default: nearly every server takes
  // 8-bit data, and a bounce would be worse than the (rare) refusal.
  if (message_.body_8bit && has_extension("8BITMIME")) mail += " BODY=8BITMIME";
  if (message_.smtputf8) mail += " SMTPUTF8";   // check_message() made sure it is advertised
  send_envelope(mail + "\r\n", now);
}

// RFC 2920: with PIPELINING, MAIL, every RCPT and DATA go out in one Send, and DATA ends the group
// (§3.1) because its reply decides whether the next bytes are the body or a command. Recipients
// that cannot be sent stay out of the group, as they stay unsent without it.
void ClientSession::send_envelope(std::string mail, TimePoint now) {
  if (policy_.pipelining && has_extension("PIPELINING")) {
    std::string group = mail;
    std::deque<ClientState> pending{ClientState::mail};
    for (const std::string& rcpt : message_.recipients) {
      if (!sendable_address(rcpt)) continue;
      group += rcpt_command(rcpt);
      pending.push_back(ClientState::rcpt);
    }
    group += "DATA\r\n";
    pending.push_back(ClientState::data);
    // Without a recipient to send, the dialogue ends at the MAIL reply: nothing to pipeline.
    if (pending.size() > 2 && group.size() <= policy_.max_pipelined_group) {
      pipelined_ = true;
      pending_ = std::move(pending);
      return send(ClientState::mail, std::move(group), now);
    }
  }
  send(ClientState::mail, std::move(mail), now);
}

// Refusals decided without asking the server, as synthetic replies so that delivery::classify
// judges them exactly like a server's (Postfix turns "TLS required but not offered" into 4.7.4 too).
std::optional<Reply> ClientSession::check_message() const {
  // RFC 6531 §3.4: a UTF-8 envelope cannot be downgraded, and must not be sent to a server that did
  // not advertise SMTPUTF8; the message can only be returned. Trying another port will not help
  // either — it is the same provider — so this is permanent.
  if (message_.smtputf8 && !has_extension("SMTPUTF8")) {
    return make_reply(553, "5.6.7", "upstream does not support SMTPUTF8");
  }
  if (size_limit_) {
    const std::uint64_t size = wire_size(message_.data);
    if (size > *size_limit_) {
      return make_reply(552, "5.3.4",
                        "message size " + std::to_string(size) + " exceeds the upstream's limit of " +
                            std::to_string(*size_limit_) + " bytes");
    }
  }
  if (!sendable_address(message_.sender)) return make_reply(553, "5.1.7", "sender address cannot be sent upstream");
  return std::nullopt;
}

void ClientSession::quit(TimePoint now) {
  if (state_ == ClientState::closed) return;
  assert(state_ == ClientState::ready && "quit() only after a Ready action");
  if (state_ != ClientState::ready) return;
  send(ClientState::quit, "QUIT\r\n", now);
}

std::optional<ClientAction> ClientSession::poll_action() {
  if (actions_.empty()) return std::nullopt;
  ClientAction action = std::move(actions_.front());
  actions_.pop_front();
  return action;
}

std::optional<TimePoint> ClientSession::poll_deadline() const { return deadline_; }

bool ClientSession::has_extension(std::string_view keyword) const {
  const std::string wanted = upper(keyword);
  for (const std::string& ext : extensions_) {
    const std::size_t end = ext.find_first_of(" =");
    if (std::string_view(ext).substr(0, end) == wanted) return true;
  }
  return false;
}

// --- replies -----------------------------------------------------------------------------------

void ClientSession::on_reply(Reply reply, TimePoint now) {
  for (std::string& line : reply.lines) scrub(line);   // a server echoing our credentials back
  last_reply_ = reply;
  if (state_ == ClientState::closed) return;
  if (state_ == ClientState::quit) return close();   // 221 or anything else: we are leaving anyway
  // RFC 5321 §3.8: 421 may come in answer to any command (or none) and the server then closes.
  if (reply.code == 421) {
    return fail(FailureClass::reply, reply, "server closing the session: " + reply.summary());
  }
  switch (state_) {
    case ClientState::greeting: return on_greeting(reply, now);
    case ClientState::ehlo: return on_ehlo(reply, now);
    case ClientState::helo: return on_helo(reply, now);
    case ClientState::starttls: return on_starttls(reply, now);
    case ClientState::tls_handshake:   // handle_bytes() refuses bytes in this state; kept for completeness
      return fail(FailureClass::protocol, reply, "reply during the TLS handshake: " + reply.summary());
    case ClientState::auth:
    case ClientState::auth_username:
    case ClientState::auth_final: return on_auth(reply, now);
    case ClientState::ready:
      return fail(FailureClass::protocol, reply, "unsolicited reply while idle: " + reply.summary());
    case ClientState::mail: return on_mail(reply, now);
    case ClientState::rcpt: return on_rcpt(reply, now);
    case ClientState::data: return on_data(reply, now);
    case ClientState::data_body:   // the shell did not call handle_sent(): the body was written
    case ClientState::data_end: return on_data_end(reply, now);
    case ClientState::rset: return on_rset(reply, now);
    case ClientState::quit:
    case ClientState::closed: return;   // handled above
  }
}

void ClientSession::on_greeting(const Reply& reply, TimePoint now) {
  if (reply.code == 220) return send(ClientState::ehlo, "EHLO " + policy_.ehlo_name + "\r\n", now);
  if (reply.transient() || reply.permanent()) {
    return fail(FailureClass::reply, reply, "greeting refused the session: " + reply.summary());
  }
  unexpected(reply);
}

void ClientSession::on_ehlo(const Reply& reply, TimePoint now) {
  if (reply.code == 250) {
    extensions_.clear();
    size_limit_.reset();
    // The first line is the server's name and greeting; each further line is one keyword.
    for (std::size_t i = 1; i < reply.lines.size(); ++i) {
      extensions_.push_back(upper(reply.lines[i]));
      const std::string& ext = extensions_.back();
      if (ext.rfind("SIZE ", 0) == 0) {
        // RFC 1870 §4: "SIZE" alone or "SIZE 0" declares no limit; so does a number we cannot read.
        std::uint64_t limit = 0;
        const auto parsed = std::from_chars(ext.data() + 5, ext.data() + ext.size(), limit);
        if (parsed.ec == std::errc() && limit > 0) size_limit_ = limit;
      }
    }
    return after_hello(now);
  }
  // RFC 5321 §3.2: a server that does not know EHLO answers 500, 501, 502, 504 or 550, and the
  // client must then fall back to HELO (and to no extensions).
  switch (reply.code) {
    case 500:
    case 501:
    case 502:
    case 504:
    case 550: return send(ClientState::helo, "HELO " + policy_.ehlo_name + "\r\n", now);
  }
  if (reply.transient() || reply.permanent()) {
    return fail(FailureClass::reply, reply, "EHLO refused: " + reply.summary());
  }
  unexpected(reply);
}

void ClientSession::on_helo(const Reply& reply, TimePoint now) {
  if (reply.code == 250) {
    extensions_.clear();
    size_limit_.reset();
    return after_hello(now);   // no extensions: no STARTTLS and no AUTH either
  }
  if (reply.transient() || reply.permanent()) {
    return fail(FailureClass::reply, reply, "EHLO and HELO refused: " + reply.summary());
  }
  unexpected(reply);
}

// After EHLO (or HELO): STARTTLS if required and not done yet, then AUTH if configured, then Ready.
void ClientSession::after_hello(TimePoint now) {
  if (policy_.tls == ClientPolicy::TlsMode::starttls && !secure_) {
    if (has_extension("STARTTLS")) return send(ClientState::starttls, "STARTTLS\r\n", now);
    // The SPEC's stripping defence: no AUTH, no MAIL, not even QUIT on this connection. A synthetic
    // 4.7.4 reply (Postfix: "TLS is required, but was not offered") so the classifier decides.
    return fail(FailureClass::tls_unavailable,
                make_reply(454, "4.7.4", "STARTTLS required but not offered (stripped by a middlebox?)"),
                "STARTTLS required but the server's EHLO did not offer it (stripped by a middlebox?); "
                "nothing was sent on this connection");
  }
  if (!policy_.username.empty() && !authenticated_) return start_auth(now);
  become_ready();
}

void ClientSession::on_starttls(const Reply& reply, TimePoint now) {
  if (reply.code == 220) {
    // Bytes after the 220 in the same read were sent before TLS and would be read as if they came
    // from inside it (CVE-2011-0411): the server is broken or someone is injecting commands.
    if (parser_.buffered() != 0) {
      const std::size_t n = parser_.buffered();
      return fail(FailureClass::protocol, std::nullopt,
                  "the server sent " + std::to_string(n) + (n == 1 ? " byte" : " bytes") +
                      " of plaintext after its 220 to STARTTLS, before the TLS handshake "
                      "(command injection, CVE-2011-0411 style); nothing more was sent");
    }
    state_ = ClientState::tls_handshake;
    deadline_ = now + policy_.tls_handshake_timeout;
    actions_.push_back(client_action::StartTls{});
    return;
  }
  if (reply.transient() || reply.permanent()) {
    return fail(FailureClass::tls_unavailable, reply, "STARTTLS refused: " + reply.summary());
  }
  unexpected(reply);
}

// The mechanisms of "AUTH PLAIN LOGIN" and of the pre-RFC 4954 "AUTH=LOGIN PLAIN" lines, all of them.
bool ClientSession::offers_mechanism(std::string_view mechanism) const {
  for (const std::string& ext : extensions_) {
    if (ext.size() < 4 || ext.compare(0, 4, "AUTH") != 0) continue;
    if (ext.size() > 4 && ext[4] != ' ' && ext[4] != '=') continue;
    std::size_t pos = 5;
    while (pos < ext.size()) {
      std::size_t end = ext.find(' ', pos);
      if (end == std::string::npos) end = ext.size();
      if (std::string_view(ext).substr(pos, end - pos) == mechanism) return true;
      pos = end + 1;
    }
  }
  return false;
}

void ClientSession::start_auth(TimePoint now) {
  using Method = ClientPolicy::AuthMethod;
  if (!secure_ && !policy_.allow_auth_without_tls) {
    return fail(FailureClass::tls_unavailable,
                make_reply(454, "4.7.4", "refusing to send credentials without TLS"),
                "refusing to send credentials without TLS on this port (tls = \"none\"; "
                "allow_auth_without_tls is off)");
  }
  mechanism_ = policy_.auth;
  switch (policy_.auth) {
    case Method::auto_:
      // XOAUTH2 only when asked for: the password field would have to hold a token.
      if (offers_mechanism("PLAIN")) {
        mechanism_ = Method::plain;
      } else if (offers_mechanism("LOGIN")) {
        mechanism_ = Method::login;
      } else {
        return fail(FailureClass::reply, make_reply(504, "5.7.4", "server offers neither AUTH PLAIN nor AUTH LOGIN"),
                    "server offers neither AUTH PLAIN nor AUTH LOGIN");
      }
      break;
    case Method::plain:
    case Method::login:
    case Method::xoauth2:
      if (!offers_mechanism(mechanism_name(mechanism_))) {
        const std::string text = std::string("server does not offer AUTH ") + mechanism_name(mechanism_);
        return fail(FailureClass::reply, make_reply(504, "5.7.4", text), text);
      }
      break;
  }
  switch (mechanism_) {
    case Method::plain:
      // RFC 4616 NUL user NUL password, sent as the initial response (RFC 4954 §4).
      return send(ClientState::auth,
                  "AUTH PLAIN " + keep_secret(encode_plain(policy_.username, policy_.password)) + "\r\n", now);
    case Method::login: return send(ClientState::auth, "AUTH LOGIN\r\n", now);
    case Method::xoauth2:
      return send(ClientState::auth,
                  "AUTH XOAUTH2 " + keep_secret(encode_xoauth2(policy_.username, policy_.password)) + "\r\n", now);
    case Method::auto_: break;   // resolved above
  }
}

void ClientSession::on_auth(const Reply& reply, TimePoint now) {
  using Method = ClientPolicy::AuthMethod;
  if (reply.code == 235) {
    authenticated_ = true;
    sasl_challenge_.clear();
    return become_ready();
  }
  if (reply.code == 334) {
    std::string challenge;
    for (const std::string& line : reply.lines) challenge += line;
    if (state_ == ClientState::auth && mechanism_ == Method::login) {
      return send(ClientState::auth_username, encode_base64(policy_.username) + "\r\n", now);
    }
    if (state_ == ClientState::auth_username) {
      return send(ClientState::auth_final, keep_secret(encode_base64(policy_.password.reveal())) + "\r\n", now);
    }
    if (state_ == ClientState::auth && mechanism_ == Method::xoauth2) {
      // The token was refused: the challenge is a base64 JSON error, and the client must answer
      // with an empty response to get the final 5xx.
      const auto decoded = decode_xoauth2_error(challenge);
      sasl_challenge_ = decoded ? *decoded : printable(challenge);
      return send(ClientState::auth_final, "\r\n", now);
    }
    return unexpected(reply);
  }
  if (reply.permanent()) return auth_refused(reply);
  if (reply.transient()) {
    return fail(FailureClass::reply, reply,
                std::string("AUTH ") + mechanism_name(mechanism_) + " failed for now: " + reply.summary());
  }
  unexpected(reply);
}

void ClientSession::auth_refused(const Reply& reply) {
  std::string detail = std::string("AUTH ") + mechanism_name(mechanism_) + " rejected: " + reply.summary();
  if (!sasl_challenge_.empty()) detail += " (server said: " + sasl_challenge_ + ")";
  fail(FailureClass::auth_rejected, reply, std::move(detail));
}

// A credential-bearing SASL response, remembered so that it can be scrubbed from anything the
// server sends back. These bytes leave the session only in a Send.
std::string ClientSession::keep_secret(std::string encoded) {
  secrets_.push_back(encoded);
  return encoded;
}

void ClientSession::scrub(std::string& text) const {
  auto hide = [&](const std::string& secret) {
    if (secret.empty()) return;
    for (std::size_t pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 8)) {
      text.replace(pos, secret.size(), "********");
    }
  };
  for (const std::string& secret : secrets_) hide(secret);   // the longer ones first
  hide(policy_.password.reveal());
}

void ClientSession::on_mail(const Reply& reply, TimePoint now) {
  if (reply.intermediate()) return unexpected(reply);
  result_.mail = reply;
  if (pipelined_) {
    // A refused MAIL decides for every recipient (delivery::classify reads nothing else), so the
    // result is final now and the same as without PIPELINING, where no RCPT would have been sent.
    // The replies to the RCPTs and DATA already sent are read all the same, and change nothing.
    if (!reply.positive()) report();
    else skip_unsendable();
    return next_pending(now);
  }
  if (!reply.positive()) return finish_message(true, now);
  send_next_rcpt_or_data(now);
}

void ClientSession::on_rcpt(const Reply& reply, TimePoint now) {
  if (reply.intermediate()) return unexpected(reply);
  if (reported_) return next_pending(now);   // pipelined after a refused MAIL
  result_.rcpt.push_back(reply);
  if (reply.positive()) ++accepted_rcpt_;
  ++next_rcpt_;
  if (!pipelined_) return send_next_rcpt_or_data(now);
  skip_unsendable();
  // The last RCPT answered and none accepted: without PIPELINING DATA would not have been sent, so
  // the result is final now, without a DATA reply, whatever the server says to DATA.
  if (next_rcpt_ == message_.recipients.size() && accepted_rcpt_ == 0) report();
  next_pending(now);
}

// Pipelined: the oldest pending command has been answered, and the next reply answers the next one.
// Each waits under its own RFC 5321 timeout, counted from the reply before it, since the server
// works through the group in order.
void ClientSession::next_pending(TimePoint now) {
  pending_.pop_front();
  assert(!pending_.empty() && "DATA ends every group and on_data() empties the queue");
  state_ = pending_.front();
  deadline_ = now + *reply_timeout(policy_, state_);
}

// Records the synthetic refusal of each recipient that cannot be sent, from next_rcpt_ up to the
// next one that can: those got no RCPT, so no reply of the server's stands for them.
void ClientSession::skip_unsendable() {
  while (next_rcpt_ < message_.recipients.size() && !sendable_address(message_.recipients[next_rcpt_])) {
    result_.rcpt.push_back(make_reply(553, "5.1.3", "recipient address cannot be sent upstream"));
    ++next_rcpt_;
  }
}

void ClientSession::send_next_rcpt_or_data(TimePoint now) {
  skip_unsendable();
  if (next_rcpt_ < message_.recipients.size()) {
    return send(ClientState::rcpt, rcpt_command(message_.recipients[next_rcpt_]), now);
  }
  if (accepted_rcpt_ == 0) return finish_message(true, now);   // DATA would only get 554
  send(ClientState::data, "DATA\r\n", now);
}

void ClientSession::on_data(const Reply& reply, TimePoint now) {
  if (pipelined_) {
    pending_.clear();
    // DATA was the last command sent: bytes after its reply answer nothing, so the server and
    // the client disagree about which reply belongs to which command. None of the answers can be
    // trusted then, and the message is left undelivered rather than judged on them.
    if (parser_.buffered() != 0) {
      const std::size_t n = parser_.buffered();
      return fail(FailureClass::protocol, reply,
                  "the server sent " + std::to_string(n) + (n == 1 ? " byte" : " bytes") +
                      " after its reply to DATA, the last command of the pipelined group: more replies than "
                      "commands");
    }
  }
  if (reply.code == 354 && reported_) {
    // Pipelined, and DATA accepted although MAIL or every RCPT was refused: a broken server, which
    // should have answered 503 or 554 (RFC 5321 §3.3). The answers are already final and reported,
    // and no byte of the message goes to a transaction without a recipient. Only a lone "." follows,
    // ending an empty message, as Postfix does ("just send "." as per RFC 2197"): the server gets
    // back to a known state without the connection being dropped, and it has nobody to deliver the
    // empty message to. Its reply ends the transaction (RFC 5321 §4.1.1.4) and is not recorded.
    return send(ClientState::data_body, ".\r\n", now);
  }
  if (reply.code == 354) {
    // The whole body and the final "." in one Send: written with one large write, it cannot stall
    // on Nagle's algorithm between a small last segment and the terminator.
    std::string body = encode_body(message_.data);
    message_.data = std::string();   // no need to hold the message twice
    return send(ClientState::data_body, std::move(body), now);
  }
  if (reply.intermediate() || reply.positive()) return unexpected(reply);
  if (!reported_) result_.data = reply;
  finish_message(true, now);
}

void ClientSession::on_data_end(const Reply& reply, TimePoint now) {
  if (reply.intermediate()) return unexpected(reply);
  if (!reported_) result_.data = reply;   // reported: the reply to the lone "." (see on_data)
  // The final reply ends the transaction either way (RFC 5321 §4.1.1.4): no RSET needed.
  finish_message(false, now);
}

void ClientSession::on_rset(const Reply& reply, TimePoint /*now*/) {
  if (reply.positive()) return become_ready();
  if (reply.transient() || reply.permanent()) {
    return fail(FailureClass::reply, reply, "RSET refused: " + reply.summary());
  }
  unexpected(reply);
}

// --- transitions -------------------------------------------------------------------------------

// MessageDone goes out as soon as the answers are final, before the RSET that clears an aborted
// transaction: if the RSET then fails, the answers are still reported rather than lost. The same
// holds pipelined for the replies still due to the rest of the group.
void ClientSession::report() {
  actions_.push_back(client_action::MessageDone{std::move(result_)});
  result_ = MessageResult{};
  reported_ = true;
}

void ClientSession::finish_message(bool reset, TimePoint now) {
  if (!reported_) report();
  message_ = OutgoingMessage{};
  pipelined_ = false;
  if (reset) return send(ClientState::rset, "RSET\r\n", now);
  become_ready();
}

void ClientSession::become_ready() {
  state_ = ClientState::ready;
  deadline_.reset();   // idle time is the shell's to bound (it decides when to quit())
  actions_.push_back(client_action::Ready{});
}

void ClientSession::send(ClientState next, std::string bytes, TimePoint now) {
  state_ = next;
  deadline_ = now + *reply_timeout(policy_, next);
  actions_.push_back(client_action::Send{std::move(bytes)});
}

void ClientSession::fail(FailureClass cls, std::optional<Reply> reply, std::string detail) {
  scrub(detail);
  if (reply) {
    for (std::string& line : reply->lines) scrub(line);
  }
  actions_.push_back(client_action::Failed{cls, std::move(reply), std::move(detail)});
  close();
}

void ClientSession::close() {
  state_ = ClientState::closed;
  deadline_.reset();
  message_ = OutgoingMessage{};
  result_ = MessageResult{};
  pipelined_ = false;
  pending_.clear();
  actions_.push_back(client_action::Close{});
}

void ClientSession::unexpected(const Reply& reply) {
  fail(FailureClass::protocol, reply, std::string("unexpected reply while waiting for ") + awaited(state_) + ": " + reply.summary());
}

}  // namespace mailferry::smtp
