// reply.hpp: an SMTP reply (RFC 5321 §4.2) with its enhanced status code (RFC 3463),
// formatted for the wire, and summarised for logs. Pure values, no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mailferry::smtp {

struct Reply {
  int code = 0;
  std::string enhanced;             // "2.0.0", or empty where no enhanced code applies (greeting, EHLO)
  std::vector<std::string> lines;   // the text of each line, without code or enhanced code

  bool positive() const { return code >= 200 && code < 300; }
  bool intermediate() const { return code >= 300 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500 && code < 600; }

  // "250-first\r\n250 last\r\n"; the enhanced code starts every line.
  std::string wire() const;
  // One line for logs and queue listings: "550 5.1.1 No such user / second line".
  std::string summary() const;
};

Reply make_reply(int code, std::string_view enhanced, std::string_view text);

}  // namespace mailferry::smtp
