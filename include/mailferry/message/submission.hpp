// submission.hpp: what `sendmail` hands on — envelope sender, recipients and the message as it will
// be sent — from its command line and the message read on stdin. Applies sendmail's rules: -t takes
// recipients from To/Cc/Bcc, Bcc never leaves, the envelope sender comes from -f, else From:, else
// user@hostname, and a message without From: gets one.
// Pure: the invoking user and host name are passed in. Never adds Date: or Message-ID: (the
// daemon, or the direct path, does that with add_missing_headers) and never touches the body.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mailferry/base/exit_code.hpp"
#include "mailferry/base/result.hpp"
#include "mailferry/message/sendmail_args.hpp"

namespace mailferry::message {

struct Submission {
  std::string sender;                    // "" is the null sender (-f '<>')
  std::vector<std::string> recipients;   // validated, qualified, without duplicates
  std::string message;
  bool smtputf8 = false;                 // an address holds non-ASCII: MAIL FROM needs SMTPUTF8
};

// `message` as SendmailInput produced it (CRLF line endings). Bare local names ("root", from cron
// or mail(1)) are qualified with `hostname`. Errors: no recipient at all (exit 64), or a sender or
// recipient that is not a valid address, named in the message (exit 65); submission_exit_code()
// tells them apart.
Result<Submission> prepare_submission(const SendmailArgs& args, std::string message,
                                      std::string_view invoking_user, std::string_view hostname);

// The sysexits code for an error from prepare_submission.
ExitCode submission_exit_code(const Error& error);

}  // namespace mailferry::message
