// command.hpp: one SMTP command line → a Command value, or the Reply that refuses it.
// Pure parsing (RFC 5321 §4.1, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 4954 AUTH).
// It knows nothing of the session's state: sequencing is ServerSession's job.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "mailferry/smtp/reply.hpp"

namespace mailferry::smtp {

namespace command {
struct Ehlo { std::string domain; };
struct Helo { std::string domain; };
struct Mail {
  std::string sender;                  // empty = null sender
  std::optional<std::uint64_t> size;   // SIZE=
  bool body_8bit = false;              // BODY=8BITMIME
  bool smtputf8 = false;               // SMTPUTF8
};
struct Rcpt { std::string recipient; };
struct Data {};
struct Rset {};
struct Noop {};
struct Quit {};
struct Vrfy {};
struct Help {};
struct StartTls {};
struct Auth { std::string mechanism; std::string initial_response; };   // mechanism upper-cased
// RFC 1985: start a queue run (only on the local sendmail socket). "ETRN #<queue id>" names one
// message (RFC 1985 §3: '#' introduces a queue name); a domain argument means the whole queue.
struct Etrn { std::string queue_id; };
// Local socket only: remove one message from the queue (`mailferry queue delete ID`).
struct Xdel { std::string queue_id; };
// Local socket only: the daemon's state (`mailferry status`), one "key=value" per reply line.
struct Xstat {};
}  // namespace command

using Command = std::variant<command::Ehlo, command::Helo, command::Mail, command::Rcpt, command::Data,
                             command::Rset, command::Noop, command::Quit, command::Vrfy, command::Help,
                             command::StartTls, command::Auth, command::Etrn, command::Xdel, command::Xstat>;

// `line` is without its CRLF. A syntax error comes back as the Reply to send (500/501/502/555).
std::variant<Command, Reply> parse_command(std::string_view line, std::size_t max_path);

}  // namespace mailferry::smtp
