// client_session.hpp: ClientSession, the upstream dialogue (RFC 5321 client side) as a pure
// state machine. Never touches a socket, a file or the clock: bytes and `now` come in, actions go out.
// It reports each recipient's answer; deciding what that means for the spool is delivery::classify's job.
// STARTTLS and AUTH are part of the dialogue, but the TLS handshake is not: the session asks the shell
// for it with a StartTls action and is told the outcome (handle_tls_established / handle_tls_failed).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mailferry/base/secret.hpp"
#include "mailferry/base/time.hpp"
#include "mailferry/smtp/reply.hpp"
#include "mailferry/smtp/reply_parser.hpp"

namespace mailferry::smtp {

struct ClientPolicy {
  // none: plaintext. starttls: STARTTLS is required — a server whose EHLO lacks it (a middlebox
  // stripping it) or refuses it gets nothing more, no AUTH and no MAIL (RFC 3207; SPEC "Delivery").
  // implicit: the shell completed TLS before handle_connected(); the session is secure from the start.
  enum class TlsMode { none, starttls, implicit };
  // auto_: PLAIN if offered, else LOGIN (never XOAUTH2 unless asked for). xoauth2: `password` holds
  // the OAuth 2.0 access token.
  enum class AuthMethod { auto_, plain, login, xoauth2 };

  std::string ehlo_name;                                  // our host name, sent in EHLO/HELO
  TlsMode tls = TlsMode::none;
  std::string username;                                   // empty: no AUTH
  Secret password;                                        // the password, or the XOAUTH2 access token
  AuthMethod auth = AuthMethod::auto_;
  // Credentials go only over TLS. With tls = none they are refused (Failed tls_unavailable) unless
  // this is set — for a relay on the same host or a trusted network only.
  bool allow_auth_without_tls = false;
  // RFC 5321 §4.5.3.2 timeouts.
  Duration greeting_timeout = std::chrono::minutes(5);    // §4.5.3.2.1 initial 220
  Duration command_timeout = std::chrono::minutes(5);     // MAIL, RCPT, EHLO, RSET, QUIT
  Duration data_init_timeout = std::chrono::minutes(2);   // §4.5.3.2.4 DATA → 354
  Duration data_block_timeout = std::chrono::minutes(3);  // §4.5.3.2.5
  Duration data_end_timeout = std::chrono::minutes(10);   // §4.5.3.2.6 final "." → reply
  Duration tls_handshake_timeout = std::chrono::minutes(5);   // StartTls → handle_tls_* (Postfix smtp_starttls_timeout)
  std::size_t max_reply_line = 4096;                      // a longer line is a protocol failure
  std::size_t max_reply_lines = 100;                      // per multi-line reply
  // RFC 2920 PIPELINING, used when the server advertises it: MAIL, the RCPTs and DATA go out as one
  // Send. Off: one command per reply even then (a server that advertises it and mishandles it).
  bool pipelining = true;
  // A larger group goes one command at a time instead. The client must avoid deadlock (RFC 2920):
  // while it is still writing, the server's replies pile up unread, and once both sides' socket
  // buffers are full neither moves. Replies are about as long as commands, so a group far below
  // any socket buffer (a few hundred recipients) cannot get there.
  std::size_t max_pipelined_group = 16 * 1024;
};

// One message to hand over. `data` is the message as stored: lines ending in CRLF, NOT dot-stuffed
// (the session stuffs it and appends CRLF.CRLF). Defensively, a bare CR or bare LF in `data` is sent
// as CRLF, and data not ending in CRLF gets one, so that no stored byte sequence can end the message
// early upstream (SMTP smuggling).
struct OutgoingMessage {
  std::string sender;                     // without brackets; empty = null sender
  std::vector<std::string> recipients;    // without brackets
  bool body_8bit = false;
  bool smtputf8 = false;
  std::string data;
};

// What the server said about one message. Replies absent where the command was never answered.
struct MessageResult {
  std::optional<Reply> mail;     // MAIL FROM
  std::vector<Reply> rcpt;       // one per recipient, in the order given (all present if MAIL was accepted)
  std::optional<Reply> data;     // the DATA reply if it was not 354, else the reply to the final "."
};

// Why a session ended without finishing what it was doing.
enum class FailureClass {
  connection,   // EOF, timeout, reset: the transport failed
  protocol,     // the server sent something that is not SMTP (garbled, overlong, wrong code)
  reply,        // the server refused the session: 4xx/5xx greeting, EHLO and HELO refused, an AUTH
                // mechanism we need is not offered, a 4xx to AUTH
  tls_unavailable,   // STARTTLS required but not offered (stripped?) or refused, or credentials would
                     // go without TLS: this port cannot be used, another may
  tls,               // the TLS handshake or the certificate check failed (reported by the shell)
  auth_rejected,     // 5xx to AUTH (535 bad credentials, 534 …): the provider's answer, on any port
};

// Port-level failures come with a synthetic reply (Postfix style: "TLS required but not offered" is a
// 4.7.4 reply), so one classifier reads real and synthetic replies alike.

namespace client_action {
struct Send { std::string bytes; };
struct MessageDone { MessageResult result; };   // then Ready follows (or Failed)
struct Ready {};                                // idle: send_message() or quit() may be called
// Do the TLS handshake now (deadline: poll_deadline()), then call handle_tls_established() or
// handle_tls_failed(). From here on no received byte may be passed to handle_bytes() unless it came
// out of the TLS layer: bytes that follow the 220 in the same read already failed the session.
struct StartTls {};
struct Failed { FailureClass cls; std::optional<Reply> reply; std::string detail; };   // then Close
struct Close {};                                // close the connection; the session is over
}  // namespace client_action

using ClientAction = std::variant<client_action::Send, client_action::MessageDone, client_action::Ready,
                                  client_action::Failed, client_action::Close, client_action::StartTls>;

// Each state except ready and closed waits for the reply to one command (and has a deadline).
// With PIPELINING, mail, rcpt and data name the oldest command of the group not yet answered.
// data_body: the body and final "." were handed out in one Send; handle_sent() moves on to data_end.
// A reply in data_body counts as the final reply, so a shell that never calls handle_sent() works too.
// tls_handshake waits for the shell (handle_tls_*), not for a reply. AUTH: auth waits for the reply
// to the AUTH command, auth_username for the reply to the LOGIN user name, auth_final for the reply
// to the last SASL response (the LOGIN password, or the empty line after an XOAUTH2 error).
enum class ClientState {
  greeting, ehlo, helo, starttls, tls_handshake, auth, auth_username, auth_final,
  ready, mail, rcpt, data, data_body, data_end, rset, quit, closed,
};

class ClientSession {
 public:
  explicit ClientSession(ClientPolicy policy);

  void handle_connected(TimePoint now);   // arms the greeting deadline
  void handle_bytes(std::span<const char> in, TimePoint now);
  void handle_eof(TimePoint now);
  void handle_timeout(TimePoint now);     // the shell calls this once poll_deadline() has passed
  // Optional: the last Send has been written completely. The reply deadline then counts from `now`
  // (RFC 5321 §4.5.3.2 times the wait for a reply, not the write); without this call it counts from
  // when the Send was handed out, which can be too short for a large body on a slow link.
  void handle_sent(TimePoint now);
  // Only after a StartTls action (ignored otherwise): the handshake succeeded and the certificate was
  // verified. The session says EHLO again and forgets what it knew (RFC 3207 §4.2).
  void handle_tls_established(TimePoint now);
  // Only after a StartTls action (ignored otherwise): Failed{tls}, then Close. `why` is for the log.
  void handle_tls_failed(std::string why, TimePoint now);

  // Only after a Ready action. The message is sent; MessageDone reports the answers, then Ready
  // (or, after a refused MAIL/RCPT/DATA, a Send of RSET and then Ready or Failed). With PIPELINING
  // the MessageResult is the same as without for the same answers; MessageDone may then come before
  // the replies to the rest of the group, which are still read before the RSET. Refusals decided
  // without asking (SMTPUTF8 not offered, over the advertised SIZE, an unsendable address) come back
  // as synthetic replies in the MessageResult; a message without recipients as an empty one.
  // Ignored once the session is closed: a Ready may still be queued ahead of Failed and Close, and a
  // message handed over then simply never gets a MessageDone (= not delivered).
  void send_message(OutgoingMessage m, TimePoint now);
  // Only after a Ready action: QUIT, then Close whatever happens (221, another reply, EOF or the
  // deadline) — never Failed, because every message was reported before. Ignored once closed.
  void quit(TimePoint now);

  std::optional<ClientAction> poll_action();
  std::optional<TimePoint> poll_deadline() const;
  ClientState state() const { return state_; }
  // EHLO keywords in upper case ("PIPELINING", "SIZE 35882577", "8BITMIME", …).
  const std::vector<std::string>& extensions() const { return extensions_; }
  // Whether EHLO advertised `keyword` (case-insensitive, parameters ignored: "SIZE" matches "SIZE 1000").
  bool has_extension(std::string_view keyword) const;
  // Whether the connection is encrypted (implicit TLS, or STARTTLS completed).
  bool secure() const { return secure_; }
  // Whether AUTH succeeded on this connection.
  bool authenticated() const { return authenticated_; }
  // Last complete reply received (for logs).
  const std::optional<Reply>& last_reply() const { return last_reply_; }

 private:
  void on_reply(Reply reply, TimePoint now);
  void on_greeting(const Reply& reply, TimePoint now);
  void on_ehlo(const Reply& reply, TimePoint now);
  void on_helo(const Reply& reply, TimePoint now);
  void after_hello(TimePoint now);
  void on_starttls(const Reply& reply, TimePoint now);
  void start_auth(TimePoint now);
  bool offers_mechanism(std::string_view mechanism) const;
  void on_auth(const Reply& reply, TimePoint now);
  void auth_refused(const Reply& reply);
  std::string keep_secret(std::string encoded);
  void scrub(std::string& text) const;
  void on_mail(const Reply& reply, TimePoint now);
  void on_rcpt(const Reply& reply, TimePoint now);
  void on_data(const Reply& reply, TimePoint now);
  void on_data_end(const Reply& reply, TimePoint now);
  void on_rset(const Reply& reply, TimePoint now);

  std::optional<Reply> check_message() const;
  void send_envelope(std::string mail, TimePoint now);
  void next_pending(TimePoint now);
  void skip_unsendable();
  void send_next_rcpt_or_data(TimePoint now);
  void report();
  void finish_message(bool reset, TimePoint now);
  void become_ready();
  void send(ClientState next, std::string bytes, TimePoint now);
  void fail(FailureClass cls, std::optional<Reply> reply, std::string detail);
  void close();
  void unexpected(const Reply& reply);

  ClientPolicy policy_;
  ClientState state_ = ClientState::greeting;
  std::vector<std::string> extensions_;
  std::optional<std::uint64_t> size_limit_;   // from "SIZE n" with n > 0 (RFC 1870 §4: 0 = no limit)
  std::optional<Reply> last_reply_;
  ReplyParser parser_;
  std::deque<ClientAction> actions_;
  std::optional<TimePoint> deadline_;
  bool secure_ = false;
  bool authenticated_ = false;
  ClientPolicy::AuthMethod mechanism_ = ClientPolicy::AuthMethod::auto_;   // the one in use once AUTH is sent
  std::string sasl_challenge_;         // the XOAUTH2 error challenge, decoded, for the Failed detail
  std::vector<std::string> secrets_;   // credentials as sent (base64), never let out of the session again
  // The message in flight. Without PIPELINING commands go out one at a time and each reply is
  // matched to the state that sent it. With it, MAIL, the RCPTs and DATA go out together and the
  // replies are matched in order against pending_, the queue of commands not yet answered; state_
  // is its head, so the same on_* handlers read them.
  OutgoingMessage message_;
  MessageResult result_;
  std::size_t next_rcpt_ = 0;       // index into message_.recipients of the next RCPT to send (or, pipelined, to answer)
  std::size_t accepted_rcpt_ = 0;   // RCPTs answered 2xx
  bool pipelined_ = false;          // the message in flight went as one RFC 2920 group
  std::deque<ClientState> pending_;   // pipelined: mail, one rcpt per RCPT sent, data; oldest first
  // MessageDone has gone out for the message in flight: pipelined, the answers can be final (MAIL
  // refused, every RCPT refused) before the rest of the group is answered.
  bool reported_ = false;
};

}  // namespace mailferry::smtp
