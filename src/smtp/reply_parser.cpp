// reply_parser.cpp: line framing and reply assembly for ReplyParser.
#include "mailferry/smtp/reply_parser.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace mailferry::smtp {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Control bytes would let a server forge log lines or break a queue listing; '?' keeps the length.
void sanitize(std::string& text) {
  for (char& c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) c = '?';
  }
}

// Length of an RFC 3463 code ("5.1.1") at the start of `text`, followed by a space or the end of
// the line, whose class is `cls`; 0 when there is none. The class must match the reply's first digit
// (RFC 3463 §2): "250 5.0.0" is not an enhanced code but text.
std::size_t enhanced_code_length(std::string_view text, char cls) {
  if (text.size() < 5 || text[0] != cls || text[1] != '.') return 0;
  std::size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    const std::size_t start = i;
    while (i < text.size() && is_digit(text[i]) && i - start < 4) ++i;
    const std::size_t digits = i - start;
    if (digits < 1 || digits > 3) return 0;
    if (part == 0) {
      if (i >= text.size() || text[i] != '.') return 0;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return 0;
  return i;
}

std::string excerpt(std::string_view line) {
  std::string out(line.substr(0, 40));
  sanitize(out);
  if (line.size() > 40) out += "...";
  return out;
}

}  // namespace

ReplyParser::ReplyParser(std::size_t max_line, std::size_t max_lines)
    : max_line_(max_line), max_lines_(max_lines) {}

void ReplyParser::feed(std::string_view bytes) {
  if (error_) return;
  buffer_.append(bytes);
}

Result<std::optional<Reply>> ReplyParser::fail(std::string message) {
  error_ = Error{std::move(message)};
  buffer_.clear();
  consumed_ = 0;
  scanned_ = 0;
  pending_ = Reply{};
  return *error_;
}

Result<std::optional<Reply>> ReplyParser::next() {
  if (error_) return *error_;
  for (;;) {
    const std::size_t newline = buffer_.find('\n', std::max(scanned_, consumed_));
    if (newline == std::string::npos) {
      // Refuse an over-long line as soon as it is certain, not when (if ever) it ends: the buffer
      // must stay bounded whatever the server sends. +1 leaves room for the CR of a CRLF.
      if (buffer_.size() - consumed_ > max_line_ + 1) {
        return fail("reply line longer than " + std::to_string(max_line_) + " bytes");
      }
      buffer_.erase(0, consumed_);
      consumed_ = 0;
      scanned_ = buffer_.size();
      return std::optional<Reply>();
    }
    std::string_view line(buffer_.data() + consumed_, newline - consumed_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool complete = false;
    std::string problem = take_line(line, complete);
    consumed_ = newline + 1;
    scanned_ = consumed_;
    if (!problem.empty()) return fail(std::move(problem));
    if (complete) {
      Reply reply = std::move(pending_);
      pending_ = Reply{};
      return std::optional<Reply>(std::move(reply));
    }
  }
}

std::string ReplyParser::take_line(std::string_view line, bool& reply_complete) {
  if (line.size() > max_line_) return "reply line longer than " + std::to_string(max_line_) + " bytes";
  // RFC 5321 §4.2: three digits, the first 2 to 5, then SP, "-" or the end of the line.
  const bool code_ok = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && is_digit(line[1]) &&
                       is_digit(line[2]);
  const bool separator_ok = code_ok && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
  if (!separator_ok) return "malformed reply line \"" + excerpt(line) + "\"";

  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!pending_.lines.empty() && code != pending_.code) {
    return "reply code changed from " + std::to_string(pending_.code) + " to " + std::to_string(code) +
           " within one reply";
  }
  if (pending_.lines.size() >= max_lines_) {
    return "reply longer than " + std::to_string(max_lines_) + " lines";
  }
  pending_.code = code;

  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
  if (const std::size_t n = enhanced_code_length(text, line[0]); n > 0) {
    if (pending_.enhanced.empty()) pending_.enhanced = std::string(text.substr(0, n));
    text.remove_prefix(n);
    if (!text.empty()) text.remove_prefix(1);   // the space after the code
  }
  std::string stored(text);
  sanitize(stored);
  pending_.lines.push_back(std::move(stored));
  reply_complete = line.size() == 3 || line[3] == ' ';
  return {};
}

}  // namespace mailferry::smtp
