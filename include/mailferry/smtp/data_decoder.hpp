// data_decoder.hpp: the DATA body (RFC 5321 §4.1.1.4, §4.5.2) — dot-unstuffing, and the end of data.
// Only CRLF "." CRLF ends the data. Every bare CR and bare LF is written out as CRLF, and a "."
// line that follows or ends with a bare CR/LF is kept as text, so no byte sequence (LF.LF, LF.CRLF,
// CR.CR, CRLF.LF …) can end the message here or — once re-stuffed for the upstream — anywhere
// else (SMTP smuggling). Pure: bytes in, bytes out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mailferry::smtp {

class DataDecoder {
 public:
  struct Progress {
    std::size_t consumed = 0;  // bytes of the input used; the rest belongs to the next command
    bool finished = false;     // CRLF.CRLF was seen
  };

  // Appends the decoded message bytes to `out`, stopping right after the terminating CRLF.CRLF.
  Progress decode(std::string_view in, std::string& out);
  // Whether a bare CR or LF was normalised (logged: it marks a broken or hostile client).
  bool normalised() const { return normalised_; }
  void reset() { *this = DataDecoder{}; }

 private:
  enum class State {
    line_start,       // after a real CRLF (or at the start of data): dot rules apply
    bare_line_start,  // after a bare CR/LF: the line is plain text
    mid_line,
    cr,               // a CR in a line; CRLF if LF follows, else a bare CR
    dot,              // "." at a line_start
    dot_cr,           // "." CR at a line_start: LF ends the data
  };
  State state_ = State::line_start;
  bool normalised_ = false;
};

}  // namespace mailferry::smtp
