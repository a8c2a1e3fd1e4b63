// request_head.cpp: HTTP/1.x request heads, strictly bounded. Lenient where RFC 9112 allows it
// (bare LF line ends, empty lines before the request line), strict where requests get smuggled
// (whitespace before a field's colon, control characters).
#include "mailferry/http/request_head.hpp"

#include <algorithm>

namespace mailferry::http {
namespace {

constexpr std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

bool is_token_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  return std::string_view("\"(),/:;<=>?@[\\]{}").find(c) == std::string_view::npos;
}

// The end of the head: the first empty line, with CRLF or bare LF line ends.
std::size_t head_end(std::string_view b) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (b[i] != '\n') continue;
    if (i + 1 < b.size() && b[i + 1] == '\n') return i + 2;
    if (i + 2 < b.size() && b[i + 1] == '\r' && b[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

}  // namespace

void RequestHeadParser::fail(int status) {
  status_ = Status::invalid;
  error_status_ = status;
}

void RequestHeadParser::feed(std::string_view bytes) {
  if (status_ != Status::need_more) return;
  // Empty lines before the request line are skipped (RFC 9112 §2.2).
  if (buffer_.empty()) {
    while (!bytes.empty() && (bytes.front() == '\r' || bytes.front() == '\n')) bytes.remove_prefix(1);
  }
  const std::size_t room = limits_.max_head - std::min(limits_.max_head, buffer_.size());
  // One byte of look-back: the blank line may straddle two reads.
  const std::size_t scan_from = buffer_.size() >= 2 ? buffer_.size() - 2 : 0;
  buffer_.append(bytes.substr(0, room));
  const auto end = head_end(std::string_view(buffer_).substr(scan_from));
  if (end != std::string_view::npos) {
    parse_head(std::string_view(buffer_).substr(0, scan_from + end));
    return;
  }
  if (bytes.size() > room || buffer_.size() >= limits_.max_head) {
    // Which limit: a request line that alone fills the head is a long URI (414).
    fail(buffer_.find('\n') == std::string::npos ? 414 : 431);
  }
}

void RequestHeadParser::parse_head(std::string_view head) {
  auto next_line = [&head]() {
    const auto nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  const std::string_view request_line = next_line();
  const auto sp1 = request_line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos) return fail(400);
  const auto method = request_line.substr(0, sp1);
  const auto target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = request_line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char)) return fail(400);
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7f;
      })) {
    return fail(400);
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400);
  }
  if (version[5] != '1') return fail(505);

  std::size_t fields = 0;
  while (!head.empty()) {
    const std::string_view line = next_line();
    if (line.empty()) break;
    if (++fields > limits_.max_fields) return fail(431);
    const auto colon = line.find(':');
    // No obsolete line folding, no whitespace between name and colon (RFC 9112 §5.1–5.2).
    if (colon == 0 || colon == std::string_view::npos) return fail(400);
    const auto name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) return fail(400);
    const auto value = line.substr(colon + 1);
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return (u < 0x20 && c != '\t') || u == 0x7f;
        })) {
      return fail(400);
    }
  }
  method_ = std::string(method);
  target_ = std::string(target);
  buffer_.clear();
  buffer_.shrink_to_fit();
  status_ = Status::done;
}

std::string_view RequestHeadParser::path() const {
  std::string_view t = target_;
  return t.substr(0, t.find('?'));
}

std::string response(int status, std::string_view content_type, std::string_view body, bool head_only,
                     std::string_view extra_fields) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\nConnection: close\r\n";
  out += extra_fields;
  out += "\r\n";
  if (!head_only) out += body;
  return out;
}

}  // namespace mailferry::http
