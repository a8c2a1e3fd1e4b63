// address.cpp: RFC 5321 §4.1.2 path syntax.
#include "mailferry/smtp/address.hpp"

namespace mailferry::smtp {
namespace {

bool is_atext(unsigned char c, bool allow_utf8) {
  if (c >= 0x80) return allow_utf8;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool valid_local_part(std::string_view local, bool allow_utf8) {
  if (local.empty() || local.size() > 64 * 4) return false;
  if (local.front() == '"') {
    // Quoted-string: qtextSMTP or quoted-pairSMTP, no control characters.
    if (local.size() < 2 || local.back() != '"') return false;
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
      auto c = static_cast<unsigned char>(local[i]);
      const bool escaped = c == '\\';
      if (escaped) {
        if (++i + 1 >= local.size()) return false;
        c = static_cast<unsigned char>(local[i]);
      }
      // quoted-pairSMTP and qtextSMTP (RFC 5321 §4.1.2) are printable ASCII; 8-bit only with
      // SMTPUTF8 (RFC 6531). '<' and '>' are refused too, though RFC 5321 allows them quoted:
      // no provider takes them in a path, and refusing now tells the client instead of bouncing.
      if (c < 0x20 || c == 0x7f || c == '<' || c == '>') return false;
      if (c >= 0x80 && !allow_utf8) return false;
      if (c == '"' && !escaped) return false;
    }
    return true;
  }
  // Dot-string: atoms separated by single dots.
  bool prev_dot = true;
  for (unsigned char c : local) {
    if (c == '.') {
      if (prev_dot) return false;
      prev_dot = true;
      continue;
    }
    if (!is_atext(c, allow_utf8)) return false;
    prev_dot = false;
  }
  return !prev_dot;
}

bool valid_domain(std::string_view domain, bool allow_utf8) {
  if (domain.empty() || domain.size() > 255) return false;
  if (domain.front() == '[') {
    // Address literal: printable, no brackets or backslashes inside (RFC 5321 §4.1.3).
    if (domain.back() != ']' || domain.size() < 3) return false;
    for (std::size_t i = 1; i + 1 < domain.size(); ++i) {
      auto c = static_cast<unsigned char>(domain[i]);
      if (c < 0x21 || c > 0x7e || c == '[' || c == ']' || c == '\\') return false;
    }
    return true;
  }
  std::size_t label_len = 0;
  for (unsigned char c : domain) {
    if (c == '.') {
      if (label_len == 0) return false;
      label_len = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || (c >= 0x80 && allow_utf8);
    if (!ok || ++label_len > 63) return false;
  }
  return label_len > 0;
}

}  // namespace

bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8) {
  const auto at = mailbox.rfind('@');
  if (at == std::string_view::npos) return false;
  return valid_local_part(mailbox.substr(0, at), allow_utf8) &&
         valid_domain(mailbox.substr(at + 1), allow_utf8);
}

std::optional<ParsedPath> parse_path(std::string_view text, bool allow_utf8, std::size_t max_path) {
  if (text.empty() || text.front() != '<') return std::nullopt;
  // Find the closing '>' outside a quoted local part.
  bool quoted = false;
  std::size_t close = std::string_view::npos;
  for (std::size_t i = 1; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted && c == '\\') {
      ++i;
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '>') {
      close = i;
      break;
    }
  }
  if (close == std::string_view::npos || close + 1 > max_path) return std::nullopt;
  std::string_view inner = text.substr(1, close - 1);
  ParsedPath out;
  out.rest = text.substr(close + 1);
  if (inner.empty()) return out;   // the null path
  // A source route "@a,@b:" is accepted and ignored (RFC 5321 Appendix C).
  if (inner.front() == '@') {
    const auto colon = inner.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    inner.remove_prefix(colon + 1);
  }
  if (!is_valid_mailbox(inner, allow_utf8)) return std::nullopt;
  out.address.assign(inner);
  return out;
}

}  // namespace mailferry::smtp
