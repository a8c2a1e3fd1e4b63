// data_decoder.cpp: DATA framing and normalisation.
#include "mailferry/smtp/data_decoder.hpp"

namespace mailferry::smtp {

DataDecoder::Progress DataDecoder::decode(std::string_view in, std::string& out) {
  std::size_t i = 0;
  const std::size_t n = in.size();
  while (i < n) {
    const char c = in[i];
    switch (state_) {
      case State::mid_line: {
        // Copy the run of ordinary bytes in one go: this is the hot path.
        const auto stop = in.find_first_of("\r\n", i);
        const std::size_t end = stop == std::string_view::npos ? n : stop;
        out.append(in.substr(i, end - i));
        i = end;
        if (i == n) break;
        if (in[i] == '\r') {
          state_ = State::cr;
        } else {   // a bare LF
          out += "\r\n";
          normalised_ = true;
          state_ = State::bare_line_start;
        }
        ++i;
        break;
      }
      case State::line_start:
        ++i;
        if (c == '.') state_ = State::dot;
        else if (c == '\r') state_ = State::cr;
        else if (c == '\n') {
          out += "\r\n";
          normalised_ = true;
          state_ = State::bare_line_start;
        } else {
          out += c;
          state_ = State::mid_line;
        }
        break;
      case State::bare_line_start:
        ++i;
        if (c == '\r') state_ = State::cr;
        else if (c == '\n') {
          out += "\r\n";
          normalised_ = true;
        } else {
          out += c;   // a leading "." here is text: the line did not start after a CRLF
          state_ = State::mid_line;
        }
        break;
      case State::cr:
        if (c == '\n') {
          ++i;
          out += "\r\n";
          state_ = State::line_start;
        } else {
          // A bare CR: write the line break, and read `c` again as the start of a plain line.
          out += "\r\n";
          normalised_ = true;
          state_ = State::bare_line_start;
        }
        break;
      case State::dot:
        if (c == '\r') {
          ++i;
          state_ = State::dot_cr;
        } else if (c == '\n') {
          // "." ended by a bare LF: text, not the end (LF.LF and CRLF.LF smuggling).
          ++i;
          out += ".\r\n";
          normalised_ = true;
          state_ = State::bare_line_start;
        } else {
          // Dot-unstuffing: the first "." of a line with more on it is removed.
          ++i;
          out += c;
          state_ = State::mid_line;
        }
        break;
      case State::dot_cr:
        if (c == '\n') {
          ++i;
          state_ = State::line_start;
          return {i, true};
        }
        // "." ended by a bare CR: text (CR.CR smuggling); read `c` again on a plain line.
        out += ".\r\n";
        normalised_ = true;
        state_ = State::bare_line_start;
        break;
    }
  }
  return {i, false};
}

}  // namespace mailferry::smtp
