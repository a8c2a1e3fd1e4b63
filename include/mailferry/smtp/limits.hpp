// limits.hpp: every bound the submission protocol enforces, with its source and the reply it earns.
// Plain data; the ServerSession applies them, the config fills in the ones users may set.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace mailferry::smtp {

struct Limits {
  // RFC 5321 §4.5.3.1.4 says 512 octets; extensions (SMTPUTF8 addresses, AUTH PLAIN with long
  // tokens, SIZE/BODY parameters) push real clients past it, so allow more, still bounded.
  // → "500 5.5.2 Line too long"
  std::size_t max_command_line = 4096;
  // RFC 5321 §4.5.3.1.3: a path is at most 256 octets. → "501 5.1.3 Bad address syntax"
  std::size_t max_path = 256;
  // RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted. → "452 4.5.3 Too many recipients"
  std::size_t max_recipients = 100;
  // RFC 1870. Set from max_message_size. → "552 5.3.4 Message size exceeds fixed maximum message size"
  std::uint64_t max_message_size = 25ull * 1024 * 1024;
  // Bad or out-of-sequence commands before the session is cut. → "421 4.7.0 Too many errors"
  std::size_t max_errors = 10;
  // RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command. Counted from
  // the last complete command line, so a client that sends one byte of a line at a time
  // (slowloris) gains nothing. → "421 4.4.2 Timeout exceeded"
  std::chrono::milliseconds command_timeout = std::chrono::minutes(5);
  // Between DATA chunks; same bound (RFC 5321 §4.5.3.2.5 gives the client 3 minutes per block).
  std::chrono::milliseconds data_timeout = std::chrono::minutes(5);
  // DATA as a whole: after a first data_timeout of grace, it must average at least this many
  // bytes a second, or it is cut like a timeout (a client trickling a byte every few minutes
  // would otherwise hold its connection for ever). 0 = no floor.
  std::uint64_t min_data_rate = 1024;
};

}  // namespace mailferry::smtp
