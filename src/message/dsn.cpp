// dsn.cpp: the bounce's layout (RFC 3462 multipart/report, RFC 3464 fields) and the sanitising
// that keeps upstream text and addresses on their own lines.
#include "mailferry/message/dsn.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mailferry/message/header_scan.hpp"
#include "mailferry/message/trace_headers.hpp"

namespace mailferry::message {

namespace {

constexpr std::size_t fold_width = 78;          // RFC 5322 §2.1.1 SHOULD
constexpr std::size_t max_line = 998;           // RFC 5322 §2.1.1 MUST (octets before CRLF)
constexpr std::size_t max_diagnostic = 900;     // upstream text kept; the rest is cut, with "..."
constexpr std::size_t max_address = 512;        // well over RFC 5321's 256-octet path
constexpr std::size_t max_boundary_seed = 40;   // RFC 2046 §5.1.1: a boundary is at most 70 chars

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Cut to at most `limit` octets without splitting a UTF-8 sequence.
std::string cut(std::string s, std::size_t limit) {
  if (s.size() <= limit) return s;
  std::size_t n = limit - 3;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s + "...";
}

// Every control byte (CR and LF above all: they would start a new header field or MIME line)
// becomes a space, runs of white space become one, and the ends are trimmed.
std::string one_line(std::string_view text, std::size_t limit) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const char d = (u < 0x20 || u == 0x7f) ? ' ' : c;
    if (d == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += d;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return cut(std::move(out), limit);
}

// An address as one line, without the angle brackets it is written between.
std::string address(std::string_view text) {
  std::string out = one_line(text, max_address);
  for (char& c : out)
    if (c == '<' || c == '>') c = '?';
  return out;
}

// A single token (queue id in the Message-ID): printable ASCII with nothing that ends a msg-id.
std::string token(std::string_view text) {
  std::string out = one_line(text, 100);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '<' || c == '>' || c == '@') c = '?';
  }
  return out;
}

std::string host_name(std::string_view host) {
  std::string out = one_line(host, 255);
  for (char& c : out)
    if (c == ' ' || c == '<' || c == '>' || c == '@' || c == ';') c = '?';
  return out.empty() ? "localhost" : out;
}

// `first` then `text` (already one line), folded at spaces to 78 columns where it can be, and
// every line starting with `indent` after the first. A word too long for a line of 998 octets is
// split (cannot happen for sanitised input, which is capped; kept so the MUST holds regardless).
std::string wrap(std::string_view first, std::string_view text, std::string_view indent) {
  std::string out(first);
  std::size_t line = out.size();
  bool line_has_word = false;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = text.find(' ', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(i, end - i);
    i = end + 1;
    while (!word.empty()) {
      const std::size_t sep = line_has_word ? 1 : 0;
      if (line_has_word && line + sep + word.size() > fold_width) {
        out += "\r\n";
        out += indent;
        line = indent.size();
        line_has_word = false;
        continue;
      }
      const std::size_t room = max_line - line - sep;
      const std::string_view piece = word.substr(0, room);
      if (sep) out += ' ';
      out += piece;
      line += sep + piece.size();
      line_has_word = true;
      word.remove_prefix(piece.size());
      if (!word.empty()) line = max_line;   // forces a break before the rest
    }
  }
  return out + "\r\n";
}

// "5.1.1" in "550 5.1.1 No such user" or "550-5.1.1 …": class, then 1–3 and 1–3 digits (RFC 3463).
bool is_enhanced(std::string_view t) {
  std::size_t i = 0;
  if (t.empty() || !is_digit(t[0])) return false;
  i = 1;
  for (int part = 0; part < 2; ++part) {
    if (i >= t.size() || t[i] != '.') return false;
    ++i;
    const std::size_t start = i;
    while (i < t.size() && is_digit(t[i])) ++i;
    if (i == start || i - start > 3) return false;
  }
  return i == t.size();
}

// Whether the diagnostic is an SMTP reply ("550 …"), so that RFC 3464's "smtp" type fits it.
bool is_smtp_reply(std::string_view d) {
  return d.size() >= 3 && d[0] >= '2' && d[0] <= '5' && is_digit(d[1]) && is_digit(d[2]) &&
         (d.size() == 3 || d[3] == ' ' || d[3] == '-');
}

bool has_8bit(std::string_view s) {
  for (const char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

// The original header section with every line ending in CRLF (bare LF and stray CR repaired) and
// no line over 998 octets (a longer one is continued on a folded line).
std::string header_section(std::string_view message) {
  const HeaderInfo info = scan_headers(message);
  std::string_view headers = message.substr(0, info.header_end);
  std::string out;
  out.reserve(headers.size() + 64);
  while (!headers.empty()) {
    std::size_t nl = headers.find('\n');
    std::string_view line = headers.substr(0, nl);
    headers.remove_prefix(nl == std::string_view::npos ? headers.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t used = 0;
    for (const char c : line) {
      if (used == max_line) {
        out += "\r\n ";
        used = 1;
      }
      out += c == '\r' ? ' ' : c;
      ++used;
    }
    out += "\r\n";
  }
  return out;
}

std::string part(std::string_view description, std::string_view content_type, const std::string& body) {
  std::string out = "Content-Description: ";
  out += description;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\n";
  if (has_8bit(body)) out += "Content-Transfer-Encoding: 8bit\r\n";
  out += "\r\n";
  out += body;
  return out;
}

std::string explanation(const DsnInput& in, std::string_view host) {
  std::string text = "This is the mail system at host " + std::string(host) + ".\r\n\r\n";
  text += wrap("", "Your message (queue id " + one_line(in.queue_id, 100) + "), accepted on " +
                       rfc5322_date(in.arrival) +
                       ", could not be delivered to one or more of its recipients. It will not be "
                       "tried again. The reasons are below.",
               "");
  for (const FailedRecipient& r : in.failed) {
    text += "\r\n";
    text += wrap("", "<" + address(r.address) + ">:", "");
    const std::string diagnostic = one_line(r.diagnostic, max_diagnostic);
    if (r.expired) {
      text += wrap("    ", "delivery was retried until the maximum queue age (max_age) passed, and then given up.", "    ");
      if (!diagnostic.empty()) text += wrap("    ", "The last attempt failed with: " + diagnostic, "    ");
    } else {
      text += wrap("    ", "the upstream server refused it permanently: " +
                             (diagnostic.empty() ? std::string("no reason given") : diagnostic),
                   "    ");
    }
  }
  return text;
}

std::string delivery_status(const DsnInput& in, std::string_view host) {
  std::string s = "Reporting-MTA: dns; " + std::string(host) + "\r\n";
  s += wrap("X-Mailferry-Queue-ID: ", one_line(in.queue_id, 100), " ");
  s += "Arrival-Date: " + rfc5322_date(in.arrival) + "\r\n";
  for (const FailedRecipient& r : in.failed) {
    s += "\r\n";
    s += wrap("Final-Recipient: rfc822; ", address(r.address), " ");
    s += "Action: failed\r\n";
    s += "Status: " + dsn_status(r) + "\r\n";
    const std::string diagnostic = one_line(r.diagnostic, max_diagnostic);
    // RFC 3464 §2.3.6: "smtp" is for an SMTP reply; a transport failure ("connection timed out")
    // gets an X- type, as Postfix's "X-Postfix;" does.
    if (!diagnostic.empty())
      s += wrap(is_smtp_reply(diagnostic) ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: X-Mailferry; ",
                diagnostic, " ");
  }
  return s;
}

// "=_mailferry_dsn_SEED"; SEED keeps only RFC 2046 bchars that need no care (letters, digits,
// '.', '-', '_'). Lengthened until it occurs in no part, so no content can close a part early.
std::string boundary(std::string_view seed, const std::vector<std::string>& parts) {
  std::string b = "=_mailferry_dsn_";
  for (const char c : seed) {
    if (b.size() >= 16 + max_boundary_seed) break;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
                    c == '-' || c == '_';
    if (ok) b += c;
  }
  const auto clashes = [&](const std::string& candidate) {
    for (const std::string& p : parts)
      if (p.find(candidate) != std::string::npos) return true;
    return false;
  };
  std::string candidate = b;
  for (unsigned n = 1; clashes(candidate) && n < 1000000; ++n) candidate = b + '.' + std::to_string(n);
  return candidate;
}

}  // namespace

std::string dsn_status(const FailedRecipient& r) {
  if (r.expired) return "4.4.7";
  std::string_view d = r.diagnostic;
  while (!d.empty() && is_space(d.front())) d.remove_prefix(1);
  // The enhanced code is the first token after the reply code (RFC 2034 §4); a bare code at the
  // start is accepted as well, but one elsewhere in free text is not.
  if (is_smtp_reply(d)) d.remove_prefix(std::min<std::size_t>(d.size(), 4));
  std::size_t end = 0;
  while (end < d.size() && !is_space(d[end]) && d[end] != '\r' && d[end] != '\n') ++end;
  const std::string_view token = d.substr(0, end);
  if (is_enhanced(token) && token[0] == '5') return std::string(token);
  return "5.0.0";
}

std::string build_dsn(const DsnInput& in) {
  const std::string host = host_name(in.reporting_host);
  const std::vector<std::string> parts = {
      part("Notification", "text/plain; charset=utf-8", explanation(in, host)),
      part("Delivery report", "message/delivery-status", delivery_status(in, host)),
      part("Undelivered Message Headers", "text/rfc822-headers", header_section(in.original_message)),
  };
  const std::string b = boundary(in.boundary_seed, parts);

  std::string out;
  out += "From: Mail Delivery System <MAILER-DAEMON@" + host + ">\r\n";
  out += wrap("To: ", "<" + address(in.original_sender) + ">", " ");
  out += "Subject: Undelivered Mail Returned to Sender\r\n";
  out += date_header(in.now);
  out += "Message-ID: <" + token(in.queue_id) + ".dsn@" + host + ">\r\n";
  out += "Auto-Submitted: auto-replied\r\n";   // RFC 3834 §5: no auto-reply to this one
  out += "MIME-Version: 1.0\r\n";
  out += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + b + "\"\r\n";
  out += "\r\n";
  out += "This is a MIME-encapsulated message.\r\n";
  for (const std::string& p : parts) {
    out += "\r\n--" + b + "\r\n";
    out += p;
  }
  out += "\r\n--" + b + "--\r\n";
  return out;
}

}  // namespace mailferry::message
