// sendmail_args.cpp: getopt-style parsing of the sendmail command line, letter by letter.
#include "mailferry/message/sendmail_args.hpp"

#include "mailferry/base/ascii.hpp"

#include <string_view>

#include "mailferry/message/header_scan.hpp"

namespace mailferry::message {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// "-f '<a@b>'" and "-f '<>'" are what bounce generators and some frameworks pass.
std::string sender_value(std::string_view v) {
  v = trim(v);
  if (v.size() >= 2 && v.front() == '<' && v.back() == '>') v = trim(v.substr(1, v.size() - 2));
  return std::string(v);
}

// sendmail's boolean option syntax: no value, or one starting with t/T/y/Y, means true.
bool sendmail_true(std::string_view v) {
  return v.empty() || v.front() == 't' || v.front() == 'T' || v.front() == 'y' || v.front() == 'Y';
}

// Letters that take a value, attached ("-B8BITMIME") or as the next argument ("-B 8BITMIME").
bool takes_value(char letter) {
  switch (letter) {
    case 'f': case 'r': case 'F': case 'b': case 'o': case 'O': case 'B': case 'N': case 'C':
    case 'L': case 'h': case 'X': case 'V': case 'R': case 'p': case 'M': case 'e': case 'A':
      return true;
    default:
      return false;
  }
}

// Modes of sendmail that mailferry does not have, with what to use instead where there is something.
std::optional<std::string> unsupported(std::string_view option) {
  const auto no = [&](std::string_view hint) {
    std::string m = std::string(option) + " is not supported";
    if (!hint.empty()) m += " (" + std::string(hint) + ")";
    return m;
  };
  if (option == "-bd" || option == "-bD") return no("use mailferry serve");
  if (option == "-bi" || option == "-I") return no("mailferry keeps no aliases database");
  if (option == "-bv") return no("mailferry does not verify addresses; mailferry probe checks the upstream");
  if (option == "-bP" || option == "-bh" || option == "-bH") return no("use mailferry status");
  if (option == "-bt" || option == "-ba") return no("");
  return std::nullopt;
}

Error unknown(std::string_view arg, char letter) {
  std::string m = "unknown option -";
  m += letter;
  if (arg.size() > 2) m += " in \"" + std::string(arg) + "\"";
  return Error{m};
}

Result<void> apply_mode(SendmailArgs& a, std::string_view value, std::string_view as_given) {
  const std::string option = "-b" + std::string(value);
  if (value == "m") {
    a.mode = SendmailArgs::Mode::deliver;
  } else if (value == "p") {
    a.mode = SendmailArgs::Mode::print_queue;
  } else if (value == "s") {
    a.mode = SendmailArgs::Mode::smtp_session;
  } else if (auto why = unsupported(option)) {
    return Error{*why};
  } else {
    return Error{"unknown option \"" + std::string(as_given) + "\""};
  }
  return {};
}

// One option letter with its value. `as_given` is how it appeared, for messages and -v.
Result<void> apply_value(SendmailArgs& a, char letter, std::string_view value, std::string_view as_given) {
  switch (letter) {
    case 'f':
    case 'r':
      a.sender = sender_value(value);   // repeated -f: the last one wins, as in sendmail
      return {};
    case 'F':
      a.full_name = std::string(value);
      return {};
    case 'b':
      return apply_mode(a, value, as_given);
    case 'o':
      if (value == "i") {
        a.ignore_dots = true;
        return {};
      }
      break;
    case 'O': {
      const std::size_t eq = value.find('=');
      if (iequals(trim(value.substr(0, eq)), "IgnoreDots")) {
        a.ignore_dots = eq == std::string_view::npos || sendmail_true(trim(value.substr(eq + 1)));
        return {};
      }
      break;
    }
    default:
      // -X (log the SMTP traffic to a file: the PHPMailer CVE-2016-10033 exploit wrote a web shell
      // with it), -C (another config file) and the rest change nothing here: the daemon's config
      // decides. Accepting them keeps callers that pass them working.
      break;
  }
  a.ignored.emplace_back(as_given);
  return {};
}

}  // namespace

Result<SendmailArgs> parse_sendmail_args(const std::vector<std::string>& argv) {
  SendmailArgs a;
  bool options_ended = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    // As in getopt: "-" alone is an operand, and options may follow recipients.
    if (options_ended || arg.size() < 2 || arg[0] != '-') {
      for (std::string& address : extract_addresses(arg)) a.recipients.push_back(std::move(address));
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    if (arg[1] == '-') return Error{"unknown option \"" + arg + "\""};

    for (std::size_t j = 1; j < arg.size(); ++j) {
      const char letter = arg[j];
      switch (letter) {
        case 't':
          a.recipients_from_headers = true;
          continue;
        case 'i':
          a.ignore_dots = true;
          continue;
        case 'v':
          a.verbose = true;
          continue;
        case 'U':   // "initial user submission": every submission here is one
        case 'n':   // no aliasing: there are no aliases
        case 'G':   // "gateway submission": nothing to relax
        case 'm':   // "me too": there is no alias expansion to leave the sender out of
          a.ignored.push_back(std::string("-") + letter);
          continue;
        case 'I':
          return Error{*unsupported("-I")};
        case 'q':
          // -q, -q15m, -qf, -qIid…: the rest of the argument selects or schedules; mailferry
          // flushes everything due, now.
          a.mode = SendmailArgs::Mode::flush_queue;
          j = arg.size();
          continue;
        default:
          break;
      }
      if (!takes_value(letter)) return unknown(arg, letter);
      std::string value;
      std::string as_given;
      if (j + 1 < arg.size()) {
        value = arg.substr(j + 1);
        as_given = std::string("-") + letter + value;
      } else if (i + 1 < argv.size()) {
        value = argv[++i];
        as_given = std::string("-") + letter + " " + value;
      } else {
        return Error{std::string("option -") + letter + " needs a value"};
      }
      if (auto r = apply_value(a, letter, value, as_given); !r) return r.error();
      break;   // the value took the rest of the argument
    }
  }
  return a;
}

}  // namespace mailferry::message
