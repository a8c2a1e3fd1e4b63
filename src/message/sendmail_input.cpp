// sendmail_input.cpp: a five-state machine over the input; plain runs of a line are copied whole.
#include "mailferry/message/sendmail_input.hpp"

namespace mailferry::message {

SendmailInput::SendmailInput(bool ignore_dots, std::uint64_t max_size)
    : ignore_dots_(ignore_dots), max_size_(max_size) {}

void SendmailInput::append(std::string_view bytes) {
  size_ += bytes.size();
  if (too_big_) return;
  if (size_ > max_size_) {
    // Keep counting but keep nothing: the message will be refused whole, and memory stays bounded.
    too_big_ = true;
    out_.clear();
    out_.shrink_to_fit();
    return;
  }
  out_.append(bytes);
}

void SendmailInput::feed(std::string_view in) {
  std::size_t i = 0;
  // Each step either consumes bytes or changes state without consuming (the byte is then looked
  // at again in the new state), so the loop ends.
  while (i < in.size() && !finished_ && !ended_) {
    const char c = in[i];
    switch (state_) {
      case State::line_start:
        if (c == '.' && !ignore_dots_) {
          state_ = State::dot;
          ++i;
        } else {
          state_ = State::in_line;
        }
        break;
      case State::in_line: {
        const std::size_t stop = in.find_first_of("\r\n", i);
        const std::size_t run_end = stop == std::string_view::npos ? in.size() : stop;
        append(in.substr(i, run_end - i));
        i = run_end;
        if (stop == std::string_view::npos) break;
        ++i;
        if (in[stop] == '\n') {
          append("\r\n");
          state_ = State::line_start;
        } else {
          state_ = State::cr;
        }
        break;
      }
      case State::cr:
        // CRLF stays one line ending; a bare CR becomes one of its own.
        append("\r\n");
        if (c == '\n') ++i;
        state_ = State::line_start;
        break;
      case State::dot:
        if (c == '\n') {
          finished_ = true;
        } else if (c == '\r') {
          state_ = State::dot_cr;
        } else {
          // ".." is a stuffed "."; ".x" is a line that happens to start with a dot.
          append(".");
          state_ = State::in_line;
          if (c != '.') break;
        }
        ++i;
        break;
      case State::dot_cr:
        if (c == '\n') {
          finished_ = true;
          ++i;
        } else {
          // Only "." with LF or CRLF ends the message; "." with a bare CR is a line holding a dot.
          append(".\r\n");
          state_ = State::line_start;
        }
        break;
    }
  }
}

void SendmailInput::end() {
  if (finished_ || ended_) return;
  ended_ = true;
  switch (state_) {
    case State::line_start:
      break;
    case State::dot:
    case State::dot_cr:
      finished_ = true;
      break;
    case State::in_line:
    case State::cr:
      append("\r\n");
      break;
  }
  state_ = State::line_start;
}

std::string SendmailInput::take() {
  std::string taken;
  taken.swap(out_);
  return taken;
}

}  // namespace mailferry::message
