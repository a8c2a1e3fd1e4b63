// hand_over.cpp: sendmail's two ways out.
#include "daemon/hand_over.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/use_awaitable.hpp>
#include <array>
#include <optional>
#include <random>

#include "daemon/credentials.hpp"
#include "daemon/serve.hpp"
#include "mailferry/message/header_scan.hpp"
#include "mailferry/message/trace_headers.hpp"
#include "mailferry/spool/queue_id.hpp"
#include "net/stream.hpp"
#include "net/upstream.hpp"
#include "tls/tls_engine.hpp"

namespace mailferry::daemon {
namespace {


// What the answers to one message mean for the caller, who still owns the message unless 0.
HandOverResult judge(const smtp::MessageResult& r, std::size_t recipients, const std::string& who) {
  HandOverResult out;
  auto fail = [&](const smtp::Reply& reply) {
    out.code = reply.permanent() ? ExitCode::unavailable : ExitCode::temp_fail;
    out.error = who + " refused the message: " + reply.summary();
  };
  if (r.mail && !r.mail->positive()) {
    fail(*r.mail);
    return out;
  }
  for (std::size_t i = 0; i < r.rcpt.size() && i < recipients; ++i) {
    if (!r.rcpt[i].positive()) {
      fail(r.rcpt[i]);
      return out;
    }
  }
  if (!r.data || !r.data->positive()) {
    if (r.data) fail(*r.data);
    else {
      out.code = ExitCode::temp_fail;
      out.error = who + " gave no answer to the message";
    }
    return out;
  }
  const auto& last = r.data->lines.empty() ? std::string() : r.data->lines.back();
  if (const auto pos = last.find("queued as "); pos != std::string::npos) out.queue_id = last.substr(pos + 10);
  return out;
}

asio::awaitable<HandOverResult> via_daemon(asio::local::stream_protocol::socket socket, const config::Config& config,
                                           HandOver message) {
  net::Stream stream(net::Stream::Socket(std::move(socket)), "local");
  smtp::ClientPolicy policy;
  policy.ehlo_name = config.hostname;
  smtp::ClientSession session(policy);
  session.handle_connected(Clock::now());
  std::array<char, 8192> buffer{};
  std::optional<smtp::MessageResult> result;
  bool sent = false;
  std::string failure;
  while (true) {
    bool closed = false;
    while (auto action = session.poll_action()) {
      if (auto* send = std::get_if<smtp::client_action::Send>(&*action)) {
        const auto deadline = session.poll_deadline().value_or(Clock::now() + std::chrono::minutes(5));
        if (co_await stream.write_all(send->bytes, deadline)) session.handle_sent(Clock::now());
        else session.handle_eof(Clock::now());
      } else if (auto* done = std::get_if<smtp::client_action::MessageDone>(&*action)) {
        result = std::move(done->result);
      } else if (std::holds_alternative<smtp::client_action::Ready>(*action)) {
        if (!sent) {
          sent = true;
          smtp::OutgoingMessage out{message.sender, message.recipients, message.body_8bit, false, message.message};
          session.send_message(std::move(out), Clock::now());
        } else {
          session.quit(Clock::now());
        }
      } else if (auto* failed = std::get_if<smtp::client_action::Failed>(&*action)) {
        failure = failed->reply ? failed->reply->summary() : failed->detail;
      } else if (std::holds_alternative<smtp::client_action::StartTls>(*action)) {
        session.handle_tls_failed("no TLS on the local socket", Clock::now());
      } else if (std::holds_alternative<smtp::client_action::Close>(*action)) {
        closed = true;
      }
    }
    if (closed) break;
    const auto r = co_await stream.read_some(buffer, session.poll_deadline());
    if (r.timed_out) session.handle_timeout(Clock::now());
    else if (r.bytes == 0) session.handle_eof(Clock::now());
    else session.handle_bytes(std::span<const char>(buffer.data(), r.bytes), Clock::now());
  }
  stream.close();
  if (!result) {
    HandOverResult out;
    out.code = ExitCode::temp_fail;
    out.error = "the mailferry daemon did not take the message: " + (failure.empty() ? "connection lost" : failure);
    co_return out;
  }
  auto out = judge(*result, message.recipients.size(), "the mailferry daemon");
  out.via_daemon = true;
  co_return out;
}

asio::awaitable<HandOverResult> direct(const config::Config& config, std::shared_ptr<tls::ClientContext> tls,
                                       HandOver message) {
  HandOverResult out;
  net::UpstreamLogin login;
  login.ehlo_name = config.hostname;
  login.tls = std::move(tls);
  auto secret = upstream_secret(config.upstream);
  if (!secret) {
    out.code = ExitCode::config;
    out.error = secret.error().message;
    co_return out;
  }
  login.secret = std::move(*secret);
  std::vector<net::PortAttempt> attempts;
  auto conn = co_await net::UpstreamConnection::open(config.upstream, config.upstream.ports, login, attempts);
  if (!conn) {
    std::string why;
    for (const auto& a : attempts) {
      why += (why.empty() ? "" : ", ") + std::to_string(a.port) + " " + a.verdict;
      if (!a.detail.empty()) why += " (" + a.detail + ")";
    }
    const bool refused = !attempts.empty() && (attempts.back().verdict == "auth_rejected" ||
                                              attempts.back().verdict == "rejected");
    out.code = refused ? ExitCode::unavailable : ExitCode::temp_fail;
    out.error = "upstream " + config.upstream.host + ": " + why + "; message not sent" +
                (refused ? "" : ", try again later");
    co_return out;
  }
  // Date: and Message-ID: where missing, as the daemon would add them.
  std::random_device rd;
  const auto id = spool::QueueId::make(std::chrono::system_clock::now(), (std::uint64_t{rd()} << 32) | rd());
  const auto info = message::scan_headers(message.message);
  smtp::OutgoingMessage out_msg{message.sender, message.recipients, message.body_8bit, false,
                                message::add_missing_headers(message.message, info, std::chrono::system_clock::now(),
                                                             id.str(), config.hostname)};
  auto result = co_await conn->send(std::move(out_msg));
  co_await conn->quit();
  if (!result) {
    out.code = ExitCode::temp_fail;
    out.error = "upstream " + config.upstream.host + ": " + conn->failure() + "; message not sent, try again later";
    co_return out;
  }
  co_return judge(*result, message.recipients.size(), "upstream " + config.upstream.host);
}

}  // namespace

HandOverResult hand_over(const config::Config& config, bool config_ok, const HandOver& message) {
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  std::error_code ec;
  socket.connect(asio::local::stream_protocol::endpoint(local_socket_name(config)), ec);
  HandOverResult result;
  result.code = ExitCode::software;
  if (!ec) {
    asio::co_spawn(io, via_daemon(std::move(socket), config, message), [&](std::exception_ptr e, HandOverResult r) {
      if (!e) result = std::move(r);
    });
    io.run();
    return result;
  }
  if (!config_ok) {
    result.code = ExitCode::temp_fail;
    result.error = "no mailferry daemon is running and the config cannot be read to deliver directly";
    return result;
  }
  auto tls = tls::ClientContext::create(config.upstream.ca_file);
  if (!tls) {
    result.code = ExitCode::config;
    result.error = tls.error().message;
    return result;
  }
  asio::co_spawn(io, direct(config, std::move(*tls), message), [&](std::exception_ptr e, HandOverResult r) {
    if (!e) result = std::move(r);
  });
  io.run();
  return result;
}

}  // namespace mailferry::daemon

namespace mailferry::daemon {
namespace {

// A short scripted exchange with bounded waits: greeting, EHLO, one command, QUIT. Returns the
// lines of the reply to the command (the third reply, counting the greeting), or none on failure.
asio::awaitable<std::vector<std::string>> control(asio::local::stream_protocol::socket socket, std::string command) {
  net::Stream stream(net::Stream::Socket(std::move(socket)), "local");
  std::string received;
  std::array<char, 4096> buffer{};
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  const std::string script = "EHLO localhost\r\n" + command + "\r\nQUIT\r\n";
  bool sent = false;
  while (received.find("\n221 ") == std::string::npos && received.size() < 65536) {
    if (!sent && received.find("220 ") != std::string::npos) {
      sent = true;
      if (!co_await stream.write_all(script, deadline)) break;
    }
    const auto r = co_await stream.read_some(buffer, deadline);
    if (r.bytes == 0) break;
    received.append(buffer.data(), r.bytes);
  }
  stream.close();
  // Replies: greeting, EHLO (multi-line, ends with "250 "), the command's, 221.
  std::vector<std::vector<std::string>> replies(1);
  std::size_t pos = 0;
  while (pos < received.size()) {
    const auto eol = received.find("\r\n", pos);
    if (eol == std::string::npos) break;
    std::string line = received.substr(pos, eol - pos);
    const bool last = line.size() >= 4 && line[3] == ' ';
    replies.back().push_back(std::move(line));
    if (last) replies.emplace_back();
    pos = eol + 2;
  }
  co_return replies.size() > 3 ? replies[2] : std::vector<std::string>{};
}

// One command on the daemon's local socket; nullopt when no daemon listens there.
std::optional<std::vector<std::string>> ask_daemon(const config::Config& config, const std::string& command) {
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  std::error_code ec;
  socket.connect(asio::local::stream_protocol::endpoint(local_socket_name(config)), ec);
  if (ec) return std::nullopt;
  std::vector<std::string> reply;
  asio::co_spawn(io, control(std::move(socket), command), [&](std::exception_ptr e, std::vector<std::string> r) {
    if (!e) reply = std::move(r);
  });
  io.run();
  return reply;
}

HandOverResult queue_command(const config::Config& config, const std::string& command, const std::string& what) {
  HandOverResult result;
  result.via_daemon = true;
  const auto lines = ask_daemon(config, command);
  if (!lines) {
    result.code = ExitCode::unavailable;
    result.error = "no mailferry daemon is running for " + config.spool_dir + ": cannot " + what;
    return result;
  }
  const std::string reply = lines->empty() ? std::string() : lines->back();
  if (reply.rfind("250 ", 0) == 0) return result;
  result.code = reply.rfind("550 ", 0) == 0 ? ExitCode::no_user : ExitCode::temp_fail;
  result.error = reply.empty() ? "the mailferry daemon did not answer" : "cannot " + what + ": " + reply;
  return result;
}

}  // namespace

HandOverResult flush_queue(const config::Config& config) { return queue_command(config, "ETRN", "flush the queue"); }

HandOverResult retry_message(const config::Config& config, const std::string& id) {
  return queue_command(config, "ETRN #" + id, "retry " + id);
}

HandOverResult delete_message(const config::Config& config, const std::string& id) {
  return queue_command(config, "XDEL " + id, "delete " + id);
}

DaemonStatus daemon_status(const config::Config& config) {
  DaemonStatus status;
  const auto lines = ask_daemon(config, "XSTAT");
  if (!lines) {
    status.error = "no mailferry daemon is running for " + config.spool_dir;
    return status;
  }
  for (const auto& line : *lines) {
    // "250-2.0.0 key=value": the text after the code and the enhanced code.
    if (line.rfind("250", 0) != 0 || line.size() < 4) break;
    std::string text = line.substr(4);
    if (text.rfind("2.0.0 ", 0) == 0) text.erase(0, 6);
    if (text == "ready=yes") status.ready = true;
    status.lines.push_back(std::move(text));
  }
  if (status.lines.empty()) {
    status.error = lines->empty() ? "the mailferry daemon did not answer" : "the daemon said: " + lines->back();
  } else if (!status.ready) {
    status.error = "the mailferry daemon is not ready (stopping)";
  }
  return status;
}

}  // namespace mailferry::daemon
