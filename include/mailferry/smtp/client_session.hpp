// client_session.hpp: ClientSession, the upstream dialogue (RFC 5321 client side) as a pure
// state machine. Never touches a socket, a file or the clock: bytes and `now` come in, actions go out.
// It reports each recipient's answer; deciding what that means for the spool is delivery::classify's job.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mailferry/base/time.hpp"
#include "mailferry/smtp/reply.hpp"

namespace mailferry::smtp {

struct ClientPolicy {
  std::string ehlo_name;                                  // our host name, sent in EHLO/HELO
  // RFC 5321 §4.5.3.2 timeouts.
  Duration greeting_timeout = std::chrono::minutes(5);    // §4.5.3.2.1 initial 220
  Duration command_timeout = std::chrono::minutes(5);     // MAIL, RCPT, EHLO, RSET, QUIT
  Duration data_init_timeout = std::chrono::minutes(2);   // §4.5.3.2.4 DATA → 354
  Duration data_block_timeout = std::chrono::minutes(3);  // §4.5.3.2.5
  Duration data_end_timeout = std::chrono::minutes(10);   // §4.5.3.2.6 final "." → reply
  std::size_t max_reply_line = 4096;                      // a longer line is a protocol failure
  std::size_t max_reply_lines = 100;                      // per multi-line reply
};

// One message to hand over. `data` is the message as stored: lines ending in CRLF, NOT dot-stuffed
// (the session stuffs it and appends CRLF.CRLF).
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
  reply,        // the server refused the session: 4xx/5xx greeting, EHLO and HELO refused
};

namespace client_action {
struct Send { std::string bytes; };
struct MessageDone { MessageResult result; };   // then Ready follows (or Failed)
struct Ready {};                                // idle: send_message() or quit() may be called
struct Failed { FailureClass cls; std::optional<Reply> reply; std::string detail; };   // then Close
struct Close {};                                // close the connection; the session is over
}  // namespace client_action

using ClientAction = std::variant<client_action::Send, client_action::MessageDone, client_action::Ready,
                                  client_action::Failed, client_action::Close>;

enum class ClientState {
  greeting, ehlo, helo, ready, mail, rcpt, data, data_body, data_end, rset, quit, closed,
};

class ClientSession {
 public:
  explicit ClientSession(ClientPolicy policy);

  void handle_connected(TimePoint now);   // arms the greeting deadline
  void handle_bytes(std::span<const char> in, TimePoint now);
  void handle_eof(TimePoint now);
  void handle_timeout(TimePoint now);     // the shell calls this once poll_deadline() has passed

  // Only after a Ready action. The message is sent; MessageDone reports the answers.
  void send_message(OutgoingMessage m, TimePoint now);
  // Only after a Ready action: QUIT, then Close.
  void quit(TimePoint now);

  std::optional<ClientAction> poll_action();
  std::optional<TimePoint> poll_deadline() const;
  ClientState state() const { return state_; }
  // EHLO keywords in upper case ("PIPELINING", "SIZE 35882577", "8BITMIME", …).
  const std::vector<std::string>& extensions() const { return extensions_; }
  // Last complete reply received (for logs).
  const std::optional<Reply>& last_reply() const { return last_reply_; }

 private:
  struct Impl;   // the implementation's private state lives in client_session.cpp
  ClientPolicy policy_;
  ClientState state_ = ClientState::greeting;
  std::vector<std::string> extensions_;
  std::optional<Reply> last_reply_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mailferry::smtp
