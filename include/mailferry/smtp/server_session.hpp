// server_session.hpp: the SMTP submission protocol as a pure state machine.
// Never touches a socket, a file or the clock: bytes and `now` come in, Actions go out.
// The spool decides durability: the 250 after the final "." is only sent once the shell reports
// the commit with handle_committed(id).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mailferry/base/secret.hpp"
#include "mailferry/base/time.hpp"
#include "mailferry/smtp/data_decoder.hpp"
#include "mailferry/smtp/limits.hpp"
#include "mailferry/smtp/line_splitter.hpp"
#include "mailferry/smtp/rejection.hpp"
#include "mailferry/smtp/reply.hpp"

namespace mailferry::smtp {

// What the listener's configuration and the peer's address decide about a session.
struct SessionPolicy {
  std::string hostname;           // in the greeting, EHLO reply and Received:
  Limits limits;
  bool auth_required = true;      // listener auth = "required"
  bool peer_trusted = false;      // the client address is in trusted_networks
  bool starttls_offered = false;  // listener tls = "starttls"
  bool implicit_tls = false;      // listener tls = "implicit": the greeting waits for the handshake
  bool auth_offered = false;      // [[user]] entries exist; AUTH is advertised only over TLS
  bool queue_control = false;     // the local sendmail socket: ETRN starts a queue run (sendmail -q)
};

// What the shell learnt from the TLS handshake, for Received: and logs.
struct TlsInfo {
  std::string version;   // "TLSv1.2"
  std::string cipher;
};

// The shell's verdict on the credentials of an Authenticate action.
struct AuthResult {
  enum class Verdict { ok, bad_credentials, locked_out, temporary_failure };
  Verdict verdict = Verdict::bad_credentials;
  std::vector<std::string> allowed_senders;   // with ok: the user's allowed_senders (empty = any)
};

// The envelope of the transaction being received.
struct Transaction {
  std::string sender;                  // empty = null sender
  std::vector<std::string> recipients;
  bool body_8bit = false;
  bool smtputf8 = false;
  std::string helo;                    // what the client called itself
  std::string protocol;                // for Received: "ESMTP", "SMTP" (+S with TLS, +A with AUTH)
  std::string user;                    // authenticated user, empty when none
};

enum class CommitError { no_space, io };

namespace server_action {
struct Send { std::string bytes; };
struct BeginMessage { Transaction transaction; };   // open a spool Incoming
struct AppendData { std::string bytes; };           // normalised, unstuffed message bytes
struct CommitMessage {};    // make it durable, then handle_committed() or handle_commit_failed()
struct StartTls {};         // the 220 is sent: hand the connection to TLS, then handle_tls_established()
struct Authenticate {       // check the credentials, then handle_auth_result()
  std::string mechanism;    // "PLAIN" or "LOGIN"
  std::string user;
  Secret password;
};
struct AbortMessage {};     // discard what was appended (too big, client gone)
struct FlushQueue {          // ETRN on the local socket: try queued messages now
  std::string queue_id;      // one message, or empty for all
};
struct DeleteMessage {       // XDEL on the local socket; the shell answers with handle_queue_result()
  std::string queue_id;
};
struct ReportStatus {};     // XSTAT on the local socket; the shell answers with handle_status()
struct Close {};            // close the connection; the session is over
}  // namespace server_action

using Action = std::variant<server_action::Send, server_action::BeginMessage, server_action::AppendData,
                            server_action::CommitMessage, server_action::AbortMessage, server_action::FlushQueue, server_action::DeleteMessage, server_action::StartTls,
                            server_action::Authenticate, server_action::ReportStatus, server_action::Close>;

enum class State {
  tls_wait,    // implicit TLS: waiting for the handshake before the greeting
  greeting,    // connected, greeting not sent yet
  ready,       // between transactions (before or after EHLO)
  mail,        // MAIL accepted: RCPT expected
  rcpt,        // at least one RCPT accepted
  data,        // inside DATA
  committing,  // final "." seen, waiting for the spool
  tls_handshake,     // STARTTLS answered 220, waiting for the shell's handshake
  auth_plain,        // AUTH PLAIN without initial response: waiting for the 334 answer
  auth_login_user,   // AUTH LOGIN: waiting for the user name
  auth_login_pass,   // AUTH LOGIN: waiting for the password
  authenticating,    // waiting for the shell's verdict on the credentials
  queue_op,          // waiting for the shell's answer to ETRN #id, XDEL or XSTAT
  closed,
};

class ServerSession {
 public:
  explicit ServerSession(SessionPolicy policy);

  // inputs
  void handle_connected(TimePoint now);   // greeting, or wait for TLS on an implicit listener
  void handle_bytes(std::span<const char> in, TimePoint now);
  void handle_committed(std::string_view queue_id, TimePoint now);
  void handle_commit_failed(CommitError e, TimePoint now);
  void handle_tls_established(const TlsInfo& tls, TimePoint now);
  void handle_auth_result(const AuthResult& result, TimePoint now);
  // The answer to a FlushQueue for one message or a DeleteMessage: found it, or no such message.
  void handle_queue_result(bool found, TimePoint now);
  // The answer to a ReportStatus: one "key=value" per line of a 250 reply.
  void handle_status(std::vector<std::string> lines, TimePoint now);
  void handle_timeout(TimePoint now);
  void handle_eof(TimePoint now);
  // The shell is stopping (SIGTERM): finish nothing new; the next reply is 421.
  void handle_shutdown(TimePoint now);

  // outputs
  std::optional<Action> poll_action();
  std::optional<TimePoint> poll_deadline() const;

  // getters
  State state() const { return state_; }
  const std::string& helo() const { return helo_; }
  const std::string& user() const { return user_; }
  bool secure() const { return tls_active_; }
  std::uint64_t messages_accepted() const { return messages_accepted_; }
  // The refusals of this session so far, by reason (for /metrics).
  const RejectionCounts& rejections() const { return rejections_; }

 private:
  void process_input(TimePoint now);
  void process_line(const LineSplitter::Line& line, TimePoint now);
  void process_data(std::string_view bytes, TimePoint now);
  // The earlier of the per-read timeout and the minimum-rate bound of the DATA phase.
  TimePoint data_deadline(TimePoint now) const;
  void finish_data(TimePoint now);
  void send(const Reply& r);
  void send_raw(std::string bytes);
  // A refused command: counts towards max_errors, and as `counted_as` in rejections() (nullopt:
  // not a rejection, as a wrong password, which has its own counter).
  void error_reply(const Reply& r, std::optional<Rejection> counted_as = Rejection::protocol);
  void reject(Rejection why, const Reply& r);
  void close_with(const Reply& r);
  void reset_transaction();
  std::string ehlo_reply() const;
  bool may_relay() const;
  void process_auth_line(std::string_view line, TimePoint now);
  void begin_auth(std::string mechanism, std::string user, Secret password);
  void resume_after_wait(TimePoint now);

  SessionPolicy policy_;
  State state_ = State::greeting;
  LineSplitter lines_;
  DataDecoder data_;
  std::string pending_input_;     // bytes held while committing (pipelined commands after ".")
  std::vector<Action> actions_;   // FIFO; Send actions are coalesced
  std::size_t next_action_ = 0;
  Transaction txn_;
  std::string helo_;
  bool esmtp_ = false;
  std::uint64_t data_size_ = 0;
  TimePoint data_started_{};        // when DATA was answered 354
  std::uint64_t data_received_ = 0; // bytes read in DATA, stored or not
  bool data_too_big_ = false;
  std::size_t errors_ = 0;
  bool shutting_down_ = false;
  std::uint64_t messages_accepted_ = 0;
  RejectionCounts rejections_{};
  bool tls_active_ = false;
  std::string user_;                        // authenticated user; empty until AUTH succeeds
  std::vector<std::string> allowed_senders_;
  std::string login_user_;                  // AUTH LOGIN: the user name, between its two prompts
  TimePoint deadline_{};
};

}  // namespace mailferry::smtp
