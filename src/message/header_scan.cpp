// header_scan.cpp: one walk over the header section, shared by scan_headers and header_value.
#include "mailferry/message/header_scan.hpp"

#include "mailferry/base/ascii.hpp"

#include <string>

namespace mailferry::message {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }


std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// RFC 5322 §3.6.8: a field name is printable ASCII except ':'. The obsolete syntax (§4.5) allows
// white space before the colon, so "Subject :" still names Subject.
bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126) return false;
  }
  return true;
}

// Walks the header section, calling on_field(name, raw_value) for each field, where raw_value is
// everything after the colon up to the field's last line ending, folds included.
template <class F>
HeaderInfo walk(std::string_view m, F&& on_field) {
  HeaderInfo info;
  std::string_view name;
  std::size_t value_start = 0;
  std::size_t value_end = 0;
  bool in_field = false;
  auto flush = [&] {
    if (in_field) on_field(name, m.substr(value_start, value_end - value_start));
    in_field = false;
  };
  auto end_at = [&](std::size_t pos, bool blank) {
    flush();
    info.header_end = pos;
    info.blank_line = blank;
    return info;
  };

  std::size_t pos = 0;
  while (pos < m.size()) {
    const std::size_t newline = m.find('\n', pos);
    const std::size_t line_end = newline == std::string_view::npos ? m.size() : newline;
    std::size_t content_end = line_end;
    if (content_end > pos && m[content_end - 1] == '\r') --content_end;
    const std::size_t next = newline == std::string_view::npos ? m.size() : newline + 1;
    const std::string_view content = m.substr(pos, content_end - pos);

    if (content.empty()) return end_at(pos, true);
    if (is_wsp(content.front())) {
      if (!in_field) return end_at(pos, false);   // a continuation of nothing: the body has begun
      value_end = content_end;
      pos = next;
      continue;
    }
    const std::size_t colon = content.find(':');
    if (colon == std::string_view::npos) return end_at(pos, false);
    std::string_view field_name = content.substr(0, colon);
    while (!field_name.empty() && is_wsp(field_name.back())) field_name.remove_suffix(1);
    if (!valid_field_name(field_name)) return end_at(pos, false);

    flush();
    in_field = true;
    name = field_name;
    value_start = pos + colon + 1;
    value_end = content_end;
    pos = next;
  }
  flush();
  info.header_end = m.size();
  info.blank_line = false;
  return info;
}

// Unfolding removes the line breaks only; the white space that follows them stays.
std::string unfold(std::string_view raw) {
  std::string value;
  value.reserve(raw.size());
  for (char c : raw) {
    if (c != '\r' && c != '\n') value += c;
  }
  return std::string(trim(value));
}

}  // namespace

HeaderInfo scan_headers(std::string_view message) {
  bool date = false;
  bool message_id = false;
  bool from = false;
  HeaderInfo info = walk(message, [&](std::string_view name, std::string_view) {
    date = date || iequals(name, "Date");
    message_id = message_id || iequals(name, "Message-ID");
    from = from || iequals(name, "From");
  });
  info.has_date = date;
  info.has_message_id = message_id;
  info.has_from = from;
  return info;
}

std::optional<std::string> header_value(std::string_view message, std::string_view name) {
  std::optional<std::string> found;
  walk(message, [&](std::string_view field, std::string_view raw) {
    if (found || !iequals(field, name)) return;
    found = unfold(raw);
  });
  return found;
}

std::vector<std::string> header_values(std::string_view message, std::string_view name) {
  std::vector<std::string> found;
  walk(message, [&](std::string_view field, std::string_view raw) {
    if (iequals(field, name)) found.push_back(unfold(raw));
  });
  return found;
}

std::vector<std::string> extract_addresses(std::string_view v) {
  std::vector<std::string> out;
  std::string plain;   // the element outside comments and angle brackets (a bare addr-spec)
  std::string angle;   // the text inside <…>, which wins over `plain` when present
  bool has_angle = false;
  bool in_angle = false;
  bool in_quote = false;
  int comment_depth = 0;

  auto finish = [&] {
    std::string address;
    if (has_angle) {
      std::string_view a = trim(angle);
      // RFC 5322 §4.4 obsolete source route "<@relay1,@relay2:user@example.com>": keep the mailbox.
      if (!a.empty() && a.front() == '@') {
        if (const std::size_t colon = a.find(':'); colon != std::string_view::npos) a = a.substr(colon + 1);
      }
      address = std::string(trim(a));
    } else {
      // Unquoted white space inside a bare address is obsolete folding ("a @ b"): drop it.
      bool quoted = false;
      for (std::size_t i = 0; i < plain.size(); ++i) {
        const char c = plain[i];
        if (quoted && c == '\\' && i + 1 < plain.size()) {
          address += c;
          address += plain[++i];
          continue;
        }
        if (c == '"') quoted = !quoted;
        if (!quoted && (is_wsp(c) || c == '\r' || c == '\n')) continue;
        address += c;
      }
    }
    if (!address.empty()) out.push_back(std::move(address));
    plain.clear();
    angle.clear();
    has_angle = false;
    in_angle = false;
  };

  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    std::string& target = in_angle ? angle : plain;
    if (in_quote) {
      target += c;
      if (c == '\\' && i + 1 < v.size()) {
        target += v[++i];
      } else if (c == '"') {
        in_quote = false;
      }
      continue;
    }
    if (comment_depth > 0) {   // comments may nest and carry quoted pairs (RFC 5322 §3.2.2)
      if (c == '\\') {
        ++i;
      } else if (c == '(') {
        ++comment_depth;
      } else if (c == ')') {
        --comment_depth;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_quote = true;
        target += c;
        break;
      case '(':
        comment_depth = 1;
        break;
      case '<':
        if (!in_angle) {
          in_angle = true;
          has_angle = true;
          angle.clear();
        } else {
          target += c;
        }
        break;
      case '>':
        if (in_angle) {
          in_angle = false;
        } else {
          target += c;
        }
        break;
      case ',':
      case ';':
        if (in_angle) {
          target += c;   // inside a source route
        } else {
          finish();      // end of one address, or ';' the end of a group
        }
        break;
      case ':':
        if (in_angle) {
          target += c;
        } else {
          plain.clear();   // what came before was a group's display name
          has_angle = false;
        }
        break;
      default:
        target += c;
    }
  }
  finish();
  return out;
}

}  // namespace mailferry::message
