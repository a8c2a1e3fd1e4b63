// sendmail_input.hpp: the message `sendmail` reads on stdin, normalised as it arrives — every line
// ending becomes CRLF (LF, CRLF and a bare CR alike), a final line without one gets one, and,
// without -i, a line holding only "." ends the message and a leading ".." stands for "." (Symfony
// Mailer dot-stuffs its input when it does not pass -i).
// Never reads stdin itself: the caller feeds whatever read() returned, in chunks of any size, and
// calls end() at end of file. Keeps at most max_size bytes, so a runaway producer cannot exhaust
// memory; the caller decides what too_big() means (the SPEC's size limit, exit 65).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mailferry::message {

class SendmailInput {
 public:
  // `ignore_dots`: -i / -oi, every byte up to end of file is the message.
  // `max_size`: the most normalised bytes kept; one more sets too_big().
  SendmailInput(bool ignore_dots, std::uint64_t max_size);

  // Bytes as read from stdin. Ignored once finished() or after end().
  void feed(std::string_view chunk);
  // End of file: completes a final line without a line ending. A final "." without one still
  // ends the message (without -i) rather than becoming part of it.
  void end();

  // A lone "." line ended the message (only without -i); what follows it is not read.
  bool finished() const { return finished_; }
  // More than max_size normalised bytes came: what take() returns is incomplete, and stays empty
  // from then on.
  bool too_big() const { return too_big_; }
  // The normalised bytes decided since the last take(). A trailing CR, or a "." at the start of a
  // line, is held back until the next byte (or end()) says what it is.
  std::string take();
  // Normalised bytes so far, kept or not.
  std::uint64_t size() const { return size_; }

 private:
  enum class State {
    line_start,   // at the start of a line
    dot,          // after a "." at the start of a line (without -i)
    dot_cr,       // after ".\r" at the start of a line (without -i)
    in_line,      // inside a line that has content
    cr,           // after a CR inside a line: CRLF or a bare CR, the next byte says
  };

  void append(std::string_view bytes);

  bool ignore_dots_;
  std::uint64_t max_size_;
  std::uint64_t size_ = 0;
  State state_ = State::line_start;
  bool finished_ = false;
  bool ended_ = false;
  bool too_big_ = false;
  std::string out_;
};

}  // namespace mailferry::message
