// line_splitter.hpp: CRLF framing of SMTP command lines, with a hard cap on line length.
// Pure buffering: bytes in, complete lines out. A bare LF also ends a command line (as Postfix
// accepts); in DATA, framing is DataDecoder's job and a bare LF never ends anything.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mailferry::smtp {

class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line) : max_line_(max_line) {}

  struct Line {
    std::string text;       // without the line terminator; cut to max_line when too_long
    bool too_long = false;  // the line exceeded max_line; the excess was discarded
  };

  void feed(std::string_view in) { buf_.append(in); }
  // The next complete line, or nullopt until more bytes arrive.
  std::optional<Line> next();
  // Bytes received that are not part of a returned line (handed to the DATA decoder).
  std::string take_rest();
  // Discards everything buffered (after STARTTLS: RFC 3207 §4.2 forbids using pre-TLS bytes).
  void clear();
  bool empty() const { return pos_ >= buf_.size() && !discarding_; }

 private:
  std::size_t max_line_;
  std::string buf_;
  std::size_t pos_ = 0;      // start of the unreturned bytes in buf_
  bool discarding_ = false;  // inside an overlong line: drop bytes until its LF
};

}  // namespace mailferry::smtp
