// sendmail_args.hpp: the command line of `sendmail` as real callers write it (PHP mail(), PHPMailer,
// Symfony Mailer, cron, mail(1), git send-email, smartd, unattended-upgrades) turned into what
// mailferry will do. Parsing follows getopt, as sendmail and Postfix do: options may come after
// recipients, booleans may be grouped ("-ti"), values may be attached or separate ("-fADDR",
// "-f ADDR"), options may repeat (the last -f wins), "--" ends the options.
// Never validates addresses (prepare_submission does, so that a bad one exits 65, not 64) and never
// reads the environment or stdin.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mailferry/base/result.hpp"

namespace mailferry::message {

struct SendmailArgs {
  enum class Mode {
    deliver,        // -bm, the default: read a message on stdin and send it
    print_queue,    // -bp (and `mailq`)
    smtp_session,   // -bs: SMTP on stdin/stdout
    flush_queue,    // -q, with any suffix (-q15m, -qf, -qI…): a queue run now
  };

  bool recipients_from_headers = false;   // -t
  bool ignore_dots = false;               // -i, -oi, -O IgnoreDots
  // -f / -r, without angle brackets; "" for the null sender ("-f '<>'", as bounce generators pass).
  std::optional<std::string> sender;
  std::optional<std::string> full_name;   // -F
  Mode mode = Mode::deliver;
  bool verbose = false;                   // -v
  // Command-line recipients, one address per element: "a@x, b@y" and "Bob <b@y>" are split and
  // unwrapped here. A bare local name ("root") is left for prepare_submission to qualify.
  std::vector<std::string> recipients;
  // Options accepted and ignored, as given ("-oem", "-B 8BITMIME"), so that -v can say so.
  std::vector<std::string> ignored;
};

// `argv` without the program name. An error is a usage error (exit 64): an unknown option, an
// option missing its value, or a mode mailferry does not have (-bd, -bi, -bv, -bt…). The message
// names the option and, where there is one, what to use instead; the caller adds its prefix.
Result<SendmailArgs> parse_sendmail_args(const std::vector<std::string>& argv_without_program);

}  // namespace mailferry::message
