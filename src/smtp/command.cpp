// command.cpp: SMTP command syntax.
#include "mailferry/smtp/command.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "mailferry/base/ascii.hpp"
#include "mailferry/smtp/address.hpp"

namespace mailferry::smtp {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f;
  });
}

Reply syntax(std::string_view text) { return make_reply(501, "5.5.4", text); }

// ESMTP parameters "KEY=VALUE KEY" after a path (RFC 5321 §4.1.2 Mail-parameters).
template <class OnParam>
bool for_each_param(std::string_view rest, OnParam on_param) {
  while (true) {
    rest = trim(rest);
    if (rest.empty()) return true;
    const auto sp = rest.find(' ');
    const std::string_view item = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
    const auto eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    if (!on_param(key, value, eq != std::string_view::npos)) return false;
  }
}

std::variant<Command, Reply> parse_mail(std::string_view args, std::size_t max_path) {
  if (!istarts_with(args, "FROM:")) return syntax("Syntax: MAIL FROM:<address>");
  args = trim(args.substr(5));   // some clients put a space after the colon
  command::Mail mail;
  std::optional<Reply> param_error;
  // Parameters first, so the path is checked with SMTPUTF8 known (RFC 6531 §3.4).
  const auto close = args.find('>');
  if (close != std::string_view::npos) {
    const bool params_ok = for_each_param(args.substr(close + 1), [&](std::string_view k, std::string_view v, bool has_v) {
      if (iequals(k, "SIZE") && has_v) {
        std::uint64_t n = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc{} || p != v.data() + v.size() || v.empty()) {
          param_error = syntax("Bad SIZE parameter");
          return false;
        }
        mail.size = n;
        return true;
      }
      if (iequals(k, "BODY") && has_v) {
        if (iequals(v, "8BITMIME")) mail.body_8bit = true;
        else if (!iequals(v, "7BIT")) {
          param_error = syntax("Bad BODY parameter");
          return false;
        }
        return true;
      }
      if (iequals(k, "SMTPUTF8") && !has_v) {
        mail.smtputf8 = true;
        return true;
      }
      if (iequals(k, "AUTH") && has_v) return true;   // RFC 4954 §5: may be ignored
      param_error = make_reply(555, "5.5.4", "Unsupported MAIL parameter");
      return false;
    });
    if (!params_ok) return *param_error;
  }
  auto path = parse_path(args, mail.smtputf8, max_path);
  if (!path) return make_reply(501, "5.1.7", "Bad sender address syntax");
  mail.sender = std::move(path->address);
  return Command{std::move(mail)};
}

std::variant<Command, Reply> parse_rcpt(std::string_view args, std::size_t max_path) {
  if (!istarts_with(args, "TO:")) return syntax("Syntax: RCPT TO:<address>");
  args = trim(args.substr(3));
  // UTF-8 is checked against the transaction's SMTPUTF8 flag by the session; parse permissively.
  auto path = parse_path(args, true, max_path);
  if (!path || path->address.empty()) return make_reply(501, "5.1.3", "Bad recipient address syntax");
  const bool params_ok = for_each_param(path->rest, [](std::string_view, std::string_view, bool) {
    return false;   // no RCPT parameters are offered (no DSN extension)
  });
  if (!params_ok) return make_reply(555, "5.5.4", "Unsupported RCPT parameter");
  return Command{command::Rcpt{std::move(path->address)}};
}

}  // namespace

std::variant<Command, Reply> parse_command(std::string_view line, std::size_t max_path) {
  if (!printable_ascii(line)) {
    // 8-bit bytes are legal only inside SMTPUTF8 addresses; control bytes never.
    for (char c : line) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 && u != '\t') return make_reply(500, "5.5.2", "Invalid character in command");
      if (u == 0x7f) return make_reply(500, "5.5.2", "Invalid character in command");
    }
  }
  const auto sp = line.find(' ');
  const std::string_view verb = line.substr(0, sp);
  const std::string_view args = sp == std::string_view::npos ? std::string_view{} : trim(line.substr(sp + 1));

  auto no_args = [&](Command c) -> std::variant<Command, Reply> {
    if (!args.empty()) return syntax("Syntax error, no parameters allowed");
    return c;
  };

  if (iequals(verb, "EHLO") || iequals(verb, "HELO")) {
    if (args.empty() || !printable_ascii(args)) return syntax("Syntax: EHLO hostname");
    if (iequals(verb, "EHLO")) return Command{command::Ehlo{std::string(args)}};
    return Command{command::Helo{std::string(args)}};
  }
  if (iequals(verb, "MAIL")) return parse_mail(args, max_path);
  if (iequals(verb, "RCPT")) return parse_rcpt(args, max_path);
  if (iequals(verb, "DATA")) return no_args(command::Data{});
  if (iequals(verb, "RSET")) return no_args(command::Rset{});
  if (iequals(verb, "NOOP")) return Command{command::Noop{}};   // RFC 5321 §4.1.1.9: argument ignored
  if (iequals(verb, "QUIT")) return no_args(command::Quit{});
  if (iequals(verb, "VRFY")) return Command{command::Vrfy{}};
  if (iequals(verb, "HELP")) return Command{command::Help{}};
  if (iequals(verb, "STARTTLS")) return no_args(command::StartTls{});
  if (iequals(verb, "ETRN")) {
    // One upstream: a domain argument changes nothing; "#ID" names one message.
    if (!args.empty() && args.front() == '#') return Command{command::Etrn{std::string(args.substr(1))}};
    return Command{command::Etrn{}};
  }
  if (iequals(verb, "XDEL")) {
    if (args.empty()) return syntax("Syntax: XDEL queue-id");
    return Command{command::Xdel{std::string(args)}};
  }
  if (iequals(verb, "XSTAT")) return no_args(command::Xstat{});
  if (iequals(verb, "AUTH")) {
    const auto sp2 = args.find(' ');
    std::string mech(args.substr(0, sp2));
    if (mech.empty()) return syntax("Syntax: AUTH mechanism [initial-response]");
    std::transform(mech.begin(), mech.end(), mech.begin(), ascii_upper);
    std::string initial = sp2 == std::string_view::npos ? std::string{} : std::string(trim(args.substr(sp2)));
    return Command{command::Auth{std::move(mech), std::move(initial)}};
  }
  return make_reply(502, "5.5.2", "Command not recognized");
}

}  // namespace mailferry::smtp
