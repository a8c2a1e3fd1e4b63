// server_session.cpp: the submission protocol. Check, then proceed: each command is first checked
// against the session's state and policy (a refusal is a reply), then carried out.
#include "mailferry/smtp/server_session.hpp"

#include <algorithm>
#include <string>

#include "mailferry/auth/sender_policy.hpp"
#include "mailferry/smtp/command.hpp"
#include "mailferry/smtp/sasl.hpp"

namespace mailferry::smtp {
namespace {

bool has_8bit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

}  // namespace

ServerSession::ServerSession(SessionPolicy policy)
    : policy_(std::move(policy)), lines_(policy_.limits.max_command_line) {}

void ServerSession::handle_connected(TimePoint now) {
  deadline_ = now + policy_.limits.command_timeout;
  if (policy_.implicit_tls) {
    state_ = State::tls_wait;
    return;
  }
  state_ = State::ready;
  send(make_reply(220, "", policy_.hostname + " ESMTP mailferry"));
}

void ServerSession::handle_bytes(std::span<const char> in, TimePoint now) {
  switch (state_) {
    case State::closed:
    case State::tls_wait:        // bytes before the handshake are the TLS engine's, never ours
    case State::tls_handshake:
      return;
    case State::committing:
    case State::authenticating:
    case State::queue_op:
      // Pipelined commands after the final "." (or AUTH): answered once the spool (or the password
      // check) has spoken (RFC 2920 §3.1).
      pending_input_.append(in.data(), in.size());
      return;
    case State::auth_plain:
    case State::auth_login_user:
    case State::auth_login_pass:
    case State::greeting:
    case State::ready:
    case State::mail:
    case State::rcpt:
    case State::data:
      break;
  }
  if (state_ == State::data) {
    process_data(std::string_view(in.data(), in.size()), now);
  } else {
    // The deadline moves only when a whole line has come (process_input), not per byte.
    lines_.feed(std::string_view(in.data(), in.size()));
  }
  process_input(now);
}

void ServerSession::process_input(TimePoint now) {
  while (state_ == State::ready || state_ == State::mail || state_ == State::rcpt ||
         state_ == State::greeting || state_ == State::auth_plain || state_ == State::auth_login_user ||
         state_ == State::auth_login_pass) {
    auto line = lines_.next();
    if (!line) return;
    deadline_ = now + policy_.limits.command_timeout;
    if (state_ == State::auth_plain || state_ == State::auth_login_user || state_ == State::auth_login_pass) {
      if (line->too_long) {
        state_ = State::ready;
        error_reply(make_reply(500, "5.5.6", "Authentication exchange line is too long"));
        continue;
      }
      process_auth_line(line->text, now);
      continue;
    }
    process_line(*line, now);
    if (state_ == State::data) {
      // Whatever followed DATA in the same read is already message content.
      process_data(lines_.take_rest(), now);
    }
  }
}

void ServerSession::process_line(const LineSplitter::Line& line, TimePoint now) {
  (void)now;
  if (line.too_long) return error_reply(make_reply(500, "5.5.2", "Error: line too long"));

  auto parsed = parse_command(line.text, policy_.limits.max_path);
  if (auto* refusal = std::get_if<Reply>(&parsed)) return error_reply(*refusal);
  auto& cmd = std::get<Command>(parsed);

  if (shutting_down_ && state_ == State::ready && !std::holds_alternative<command::Quit>(cmd)) {
    return close_with(make_reply(421, "4.3.2", policy_.hostname + " Service shutting down"));
  }

  std::visit(
      [&](auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, command::Ehlo> || std::is_same_v<T, command::Helo>) {
          reset_transaction();
          helo_ = c.domain;
          esmtp_ = std::is_same_v<T, command::Ehlo>;
          state_ = State::ready;
          if (esmtp_) send_raw(ehlo_reply());
          else send(make_reply(250, "", policy_.hostname));
        } else if constexpr (std::is_same_v<T, command::Mail>) {
          if (helo_.empty()) return error_reply(make_reply(503, "5.5.1", "Error: send HELO/EHLO first"));
          if (state_ != State::ready) return error_reply(make_reply(503, "5.5.1", "Error: nested MAIL command"));
          if (policy_.auth_required && user_.empty()) {
            return error_reply(make_reply(530, "5.7.0", "Authentication required"), Rejection::auth_required);
          }
          if ((c.body_8bit || c.smtputf8 || c.size) && !esmtp_) {
            return error_reply(make_reply(555, "5.5.4", "MAIL parameters need EHLO"));
          }
          if (c.size && *c.size > policy_.limits.max_message_size) {
            return reject(Rejection::size, make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size"));
          }
          if (!user_.empty() && !auth::sender_allowed(allowed_senders_, c.sender)) {
            return reject(Rejection::sender_not_allowed, make_reply(553, "5.7.1", "<" + c.sender + ">: Sender address rejected: not owned by user " + user_));
          }
          txn_ = Transaction{};
          txn_.sender = std::move(c.sender);
          txn_.body_8bit = c.body_8bit;
          txn_.smtputf8 = c.smtputf8;
          state_ = State::mail;
          send(make_reply(250, "2.1.0", "Ok"));
        } else if constexpr (std::is_same_v<T, command::Rcpt>) {
          if (state_ != State::mail && state_ != State::rcpt) {
            return error_reply(make_reply(503, "5.5.1", "Error: need MAIL command"));
          }
          if (!may_relay()) {
            return reject(Rejection::relay_denied, make_reply(554, "5.7.1", "<" + c.recipient + ">: Relay access denied"));
          }
          if (has_8bit(c.recipient) && !txn_.smtputf8) {
            return reject(Rejection::protocol, make_reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
          }
          if (txn_.recipients.size() >= policy_.limits.max_recipients) {
            return reject(Rejection::recipients, make_reply(452, "4.5.3", "Error: too many recipients"));
          }
          txn_.recipients.push_back(std::move(c.recipient));
          state_ = State::rcpt;
          send(make_reply(250, "2.1.5", "Ok"));
        } else if constexpr (std::is_same_v<T, command::Data>) {
          if (state_ == State::mail) return send(make_reply(554, "5.5.1", "Error: no valid recipients"));
          if (state_ != State::rcpt) return error_reply(make_reply(503, "5.5.1", "Error: need RCPT command"));
          send(make_reply(354, "", "End data with <CR><LF>.<CR><LF>"));
          txn_.helo = helo_;
          // RFC 3848: ESMTPS with TLS, ESMTPA with AUTH, ESMTPSA with both.
          txn_.protocol = esmtp_ ? "ESMTP" : "SMTP";
          if (esmtp_ && tls_active_) txn_.protocol += 'S';
          if (esmtp_ && !user_.empty()) txn_.protocol += 'A';
          txn_.user = user_;
          actions_.emplace_back(server_action::BeginMessage{txn_});
          data_.reset();
          data_size_ = 0;
          data_too_big_ = false;
          data_started_ = now;
          data_received_ = 0;
          deadline_ = now + policy_.limits.data_timeout;
          state_ = State::data;
        } else if constexpr (std::is_same_v<T, command::Rset>) {
          reset_transaction();
          send(make_reply(250, "2.0.0", "Ok"));
        } else if constexpr (std::is_same_v<T, command::Noop>) {
          send(make_reply(250, "2.0.0", "Ok"));
        } else if constexpr (std::is_same_v<T, command::Quit>) {
          close_with(make_reply(221, "2.0.0", "Bye"));
        } else if constexpr (std::is_same_v<T, command::Vrfy>) {
          send(make_reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery"));
        } else if constexpr (std::is_same_v<T, command::Help>) {
          send(make_reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"));
        } else if constexpr (std::is_same_v<T, command::Etrn>) {
          if (!policy_.queue_control) return error_reply(make_reply(502, "5.5.2", "Command not recognized"));
          if (c.queue_id.empty()) {
            send(make_reply(250, "2.0.0", "Queue run started"));
          } else {
            state_ = State::queue_op;   // one message: the shell answers with handle_queue_result()
          }
          actions_.emplace_back(server_action::FlushQueue{c.queue_id});
        } else if constexpr (std::is_same_v<T, command::Xdel>) {
          if (!policy_.queue_control) return error_reply(make_reply(502, "5.5.2", "Command not recognized"));
          state_ = State::queue_op;
          actions_.emplace_back(server_action::DeleteMessage{c.queue_id});
        } else if constexpr (std::is_same_v<T, command::Xstat>) {
          if (!policy_.queue_control) return error_reply(make_reply(502, "5.5.2", "Command not recognized"));
          state_ = State::queue_op;
          actions_.emplace_back(server_action::ReportStatus{});
        } else if constexpr (std::is_same_v<T, command::StartTls>) {
          if (!policy_.starttls_offered) {
            return error_reply(make_reply(502, "5.5.1", "Error: STARTTLS not available on this listener"));
          }
          if (tls_active_) return error_reply(make_reply(503, "5.5.1", "Error: TLS already active"));
          if (state_ != State::ready) return error_reply(make_reply(503, "5.5.1", "Error: MAIL transaction in progress"));
          send(make_reply(220, "2.0.0", "Ready to start TLS"));
          // RFC 3207 §4.2: nothing the client sent before the handshake may be used after it
          // (plaintext injection, CVE-2011-0411).
          lines_.clear();
          state_ = State::tls_handshake;
          actions_.emplace_back(server_action::StartTls{});
        } else if constexpr (std::is_same_v<T, command::Auth>) {
          if (!policy_.auth_offered) {
            return error_reply(make_reply(503, "5.5.1", "Error: authentication not enabled"));
          }
          if (!tls_active_) {
            return error_reply(make_reply(538, "5.7.11", "Encryption required for requested authentication mechanism"));
          }
          if (helo_.empty()) return error_reply(make_reply(503, "5.5.1", "Error: send EHLO first"));
          if (!user_.empty()) return error_reply(make_reply(503, "5.5.1", "Error: already authenticated"));
          if (state_ != State::ready) return error_reply(make_reply(503, "5.5.1", "Error: MAIL transaction in progress"));
          if (c.mechanism == "PLAIN") {
            if (c.initial_response.empty()) {
              state_ = State::auth_plain;
              return send_raw("334 \r\n");
            }
            return process_auth_line(c.initial_response == "=" ? std::string_view{} : std::string_view(c.initial_response), now);
          }
          if (c.mechanism == "LOGIN") {
            if (c.initial_response.empty()) {
              state_ = State::auth_login_user;
              return send_raw("334 " + login_user_prompt() + "\r\n");
            }
            state_ = State::auth_login_user;
            return process_auth_line(c.initial_response, now);
          }
          error_reply(make_reply(504, "5.5.4", "Unrecognized authentication type"));
        }
      },
      cmd);
}

TimePoint ServerSession::data_deadline(TimePoint now) const {
  const TimePoint idle = now + policy_.limits.data_timeout;
  if (policy_.limits.min_data_rate == 0) return idle;
  const auto earned = std::chrono::milliseconds(data_received_ * 1000 / policy_.limits.min_data_rate);
  return std::min(idle, data_started_ + policy_.limits.data_timeout + earned);
}

void ServerSession::process_data(std::string_view bytes, TimePoint now) {
  data_received_ += bytes.size();
  deadline_ = data_deadline(now);
  std::string decoded;
  const auto progress = data_.decode(bytes, decoded);
  if (!decoded.empty() && !data_too_big_) {
    data_size_ += decoded.size();
    if (data_size_ > policy_.limits.max_message_size) {
      // Keep reading to the end of data (the client expects to finish), but store nothing more.
      data_too_big_ = true;
      actions_.emplace_back(server_action::AbortMessage{});
    } else {
      actions_.emplace_back(server_action::AppendData{std::move(decoded)});
    }
  }
  if (!progress.finished) return;
  const std::string_view rest = bytes.substr(progress.consumed);
  if (data_too_big_) {
    reset_transaction();
    state_ = State::ready;
    reject(Rejection::size, make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size"));
    lines_.feed(rest);
    return;   // process_input continues with the lines that followed
  }
  finish_data(now);
  pending_input_.append(rest);
}

void ServerSession::finish_data(TimePoint) {
  actions_.emplace_back(server_action::CommitMessage{});
  state_ = State::committing;
}

void ServerSession::handle_committed(std::string_view queue_id, TimePoint now) {
  if (state_ != State::committing) return;
  ++messages_accepted_;
  reset_transaction();
  send(make_reply(250, "2.0.0", "Ok: queued as " + std::string(queue_id)));
  resume_after_wait(now);
}

void ServerSession::handle_commit_failed(CommitError e, TimePoint now) {
  if (state_ != State::committing) return;
  reset_transaction();
  switch (e) {
    case CommitError::no_space:
      send(make_reply(452, "4.3.1", "Insufficient system storage"));
      break;
    case CommitError::io:
      send(make_reply(451, "4.3.0", "Local error in processing, try again later"));
      break;
  }
  resume_after_wait(now);
}

void ServerSession::process_auth_line(std::string_view line, TimePoint now) {
  (void)now;
  if (line == "*") {   // RFC 4954 §4: the client cancels
    state_ = State::ready;
    return error_reply(make_reply(501, "5.7.0", "Authentication cancelled"));
  }
  const State step = state_;
  state_ = State::ready;   // every failure below leaves the exchange
  switch (step) {
    case State::ready:      // PLAIN with an initial response
    case State::auth_plain: {
      auto creds = decode_plain(line);
      if (!creds) return error_reply(make_reply(501, "5.5.2", "Cannot decode AUTH PLAIN response"));
      return begin_auth("PLAIN", std::move(creds->user), std::move(creds->password));
    }
    case State::auth_login_user: {
      auto user = decode_login_response(line);
      if (!user || user->empty()) return error_reply(make_reply(501, "5.5.2", "Cannot decode AUTH LOGIN user name"));
      login_user_ = std::move(*user);
      state_ = State::auth_login_pass;
      return send_raw("334 " + login_password_prompt() + "\r\n");
    }
    case State::auth_login_pass: {
      auto password = decode_login_response(line);
      if (!password) return error_reply(make_reply(501, "5.5.2", "Cannot decode AUTH LOGIN password"));
      return begin_auth("LOGIN", std::move(login_user_), Secret(std::move(*password)));
    }
    case State::tls_wait:
    case State::greeting:
    case State::mail:
    case State::rcpt:
    case State::data:
    case State::committing:
    case State::tls_handshake:
    case State::authenticating:
    case State::queue_op:
    case State::closed:
      return;
  }
}

void ServerSession::begin_auth(std::string mechanism, std::string user, Secret password) {
  login_user_ = user;   // kept for the verdict
  state_ = State::authenticating;
  actions_.emplace_back(server_action::Authenticate{std::move(mechanism), std::move(user), std::move(password)});
}

void ServerSession::handle_auth_result(const AuthResult& result, TimePoint now) {
  if (state_ != State::authenticating) return;
  state_ = State::ready;
  switch (result.verdict) {
    case AuthResult::Verdict::ok:
      user_ = std::move(login_user_);
      allowed_senders_ = result.allowed_senders;
      send(make_reply(235, "2.7.0", "Authentication successful"));
      break;
    case AuthResult::Verdict::bad_credentials:
      error_reply(make_reply(535, "5.7.8", "Authentication credentials invalid"), std::nullopt);
      break;
    case AuthResult::Verdict::locked_out:
      ++rejections_[static_cast<std::size_t>(Rejection::rate)];
      close_with(make_reply(421, "4.7.0", policy_.hostname + " Too many failed authentications, try again later"));
      break;
    case AuthResult::Verdict::temporary_failure:
      send(make_reply(454, "4.7.0", "Temporary authentication failure"));
      break;
  }
  login_user_.clear();
  resume_after_wait(now);
}

void ServerSession::handle_queue_result(bool found, TimePoint now) {
  if (state_ != State::queue_op) return;
  state_ = State::ready;
  if (found) send(make_reply(250, "2.0.0", "Ok"));
  else send(make_reply(550, "5.1.0", "No such message in the queue"));
  resume_after_wait(now);
}

void ServerSession::handle_status(std::vector<std::string> lines, TimePoint now) {
  if (state_ != State::queue_op) return;
  state_ = State::ready;
  if (lines.empty()) lines.emplace_back("ready=no");
  send(Reply{250, "2.0.0", std::move(lines)});
  resume_after_wait(now);
}

void ServerSession::handle_tls_established(const TlsInfo& tls, TimePoint now) {
  (void)tls;
  if (state_ == State::tls_wait) {
    tls_active_ = true;
    state_ = State::ready;
    deadline_ = now + policy_.limits.command_timeout;
    send(make_reply(220, "", policy_.hostname + " ESMTP mailferry"));
    return;
  }
  if (state_ != State::tls_handshake) return;
  // RFC 3207 §4.2: the session starts over; the client must say EHLO again.
  tls_active_ = true;
  helo_.clear();
  esmtp_ = false;
  txn_ = Transaction{};
  lines_.clear();
  state_ = State::ready;
  deadline_ = now + policy_.limits.command_timeout;
}

void ServerSession::resume_after_wait(TimePoint now) {
  if (state_ == State::closed) return;
  deadline_ = now + policy_.limits.command_timeout;
  lines_.feed(pending_input_);
  pending_input_.clear();
  process_input(now);
}

void ServerSession::handle_timeout(TimePoint now) {
  if (state_ == State::closed || state_ == State::committing || state_ == State::authenticating ||
      state_ == State::queue_op || now < deadline_) {
    return;
  }
  if (state_ == State::data && !data_too_big_) actions_.emplace_back(server_action::AbortMessage{});
  close_with(make_reply(421, "4.4.2", policy_.hostname + " Error: timeout exceeded"));
}

void ServerSession::handle_eof(TimePoint) {
  if (state_ == State::closed) return;
  if (state_ == State::data && !data_too_big_) actions_.emplace_back(server_action::AbortMessage{});
  if (state_ == State::committing || state_ == State::authenticating || state_ == State::queue_op) return;
  state_ = State::closed;
  actions_.emplace_back(server_action::Close{});
}

void ServerSession::handle_shutdown(TimePoint) {
  shutting_down_ = true;
  if (state_ == State::ready || state_ == State::greeting || state_ == State::tls_wait) {
    close_with(make_reply(421, "4.3.2", policy_.hostname + " Service shutting down"));
  }
}

std::optional<Action> ServerSession::poll_action() {
  if (next_action_ >= actions_.size()) {
    actions_.clear();
    next_action_ = 0;
    return std::nullopt;
  }
  return std::move(actions_[next_action_++]);
}

std::optional<TimePoint> ServerSession::poll_deadline() const {
  switch (state_) {
    case State::closed:
    case State::committing:
    case State::authenticating:
    case State::queue_op:
      return std::nullopt;
    case State::tls_handshake:
    case State::auth_plain:
    case State::auth_login_user:
    case State::auth_login_pass:
    case State::tls_wait:
    case State::greeting:
    case State::ready:
    case State::mail:
    case State::rcpt:
    case State::data:
      return deadline_;
  }
  return std::nullopt;
}

void ServerSession::send(const Reply& r) { send_raw(r.wire()); }

void ServerSession::send_raw(std::string bytes) {
  // Coalesce replies produced by one batch of pipelined commands into one write (RFC 2920 §3.2).
  if (next_action_ < actions_.size()) {
    if (auto* last = std::get_if<server_action::Send>(&actions_.back())) {
      last->bytes += bytes;
      return;
    }
  }
  actions_.emplace_back(server_action::Send{std::move(bytes)});
}

void ServerSession::reject(Rejection why, const Reply& r) {
  ++rejections_[static_cast<std::size_t>(why)];
  send(r);
}

void ServerSession::error_reply(const Reply& r, std::optional<Rejection> counted_as) {
  if (counted_as) ++rejections_[static_cast<std::size_t>(*counted_as)];
  if (++errors_ >= policy_.limits.max_errors) {
    return close_with(make_reply(421, "4.7.0", policy_.hostname + " Error: too many errors"));
  }
  send(r);
}

void ServerSession::close_with(const Reply& r) {
  send(r);
  state_ = State::closed;
  actions_.emplace_back(server_action::Close{});
}

void ServerSession::reset_transaction() {
  txn_ = Transaction{};
  if (state_ == State::mail || state_ == State::rcpt || state_ == State::committing) state_ = State::ready;
}

std::string ServerSession::ehlo_reply() const {
  Reply r{250, "", {policy_.hostname}};
  r.lines.push_back("PIPELINING");
  r.lines.push_back("SIZE " + std::to_string(policy_.limits.max_message_size));
  r.lines.push_back("8BITMIME");
  r.lines.push_back("ENHANCEDSTATUSCODES");
  r.lines.push_back("SMTPUTF8");
  if (policy_.starttls_offered && !tls_active_) r.lines.push_back("STARTTLS");
  // AUTH only once the connection is private, and only the two mechanisms submission clients
  // (PHPMailer, Symfony Mailer) choose among.
  if (policy_.auth_offered && tls_active_ && user_.empty()) r.lines.push_back("AUTH PLAIN LOGIN");
  return r.wire();
}

bool ServerSession::may_relay() const {
  // Never an open relay: an authenticated user, or a trusted client on an auth = "none" listener.
  return !user_.empty() || (!policy_.auth_required && policy_.peer_trusted);
}

}  // namespace mailferry::smtp
