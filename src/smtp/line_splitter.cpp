// line_splitter.cpp: command-line framing.
#include "mailferry/smtp/line_splitter.hpp"

namespace mailferry::smtp {

std::optional<LineSplitter::Line> LineSplitter::next() {
  while (pos_ < buf_.size()) {
    const auto lf = buf_.find('\n', pos_);
    if (discarding_) {
      // The overlong line was already reported; its remainder is dropped up to its end.
      if (lf == std::string::npos) {
        buf_.clear();
        pos_ = 0;
        return std::nullopt;
      }
      discarding_ = false;
      pos_ = lf + 1;
      continue;
    }
    if (lf == std::string::npos) {
      if (buf_.size() - pos_ > max_line_) {
        // Report now instead of buffering without bound.
        Line line{buf_.substr(pos_, max_line_), true};
        buf_.clear();
        pos_ = 0;
        discarding_ = true;
        return line;
      }
      break;
    }
    std::size_t end = lf;
    if (end > pos_ && buf_[end - 1] == '\r') --end;
    Line line{buf_.substr(pos_, end - pos_), false};
    if (line.text.size() > max_line_) {
      line.text.resize(max_line_);
      line.too_long = true;
    }
    pos_ = lf + 1;
    return line;
  }
  // Compact: keep only the unreturned tail.
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return std::nullopt;
}

std::string LineSplitter::take_rest() {
  std::string rest = buf_.substr(pos_);
  buf_.clear();
  pos_ = 0;
  return rest;
}

void LineSplitter::clear() {
  buf_.clear();
  pos_ = 0;
  discarding_ = false;
}

}  // namespace mailferry::smtp
