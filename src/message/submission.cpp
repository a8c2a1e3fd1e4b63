// submission.cpp: sender, recipients and the two header edits (Bcc out, From: in) for sendmail mode.
#include "mailferry/message/submission.hpp"

#include "mailferry/base/ascii.hpp"

#include <algorithm>
#include <optional>

#include "mailferry/message/header_scan.hpp"
#include "mailferry/smtp/address.hpp"
#include "mailferry/smtp/sasl.hpp"

namespace mailferry::message {
namespace {

constexpr std::string_view no_recipients_message =
    "no recipients: name them on the command line, or pass -t to take them from To, Cc and Bcc";

// Non-ASCII addresses are let through (and flagged smtputf8): the upstream decides whether it
// takes them, and refusing them here would be a guess.
constexpr bool allow_utf8 = true;


bool has_8bit(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// An address as it may appear in a one-line error: control bytes cannot break the line.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  return out;
}

// cron, mail(1) and To: lines written by scripts name local users ("root"); sendmail qualifies
// them with the local host name, and so does mailferry.
std::string qualify(std::string_view address, std::string_view hostname) {
  std::string out(address);
  if (out.find('@') == std::string::npos) {
    out += '@';
    out += hostname;
  }
  return out;
}

// The local part is case-sensitive (RFC 5321 §2.4), the domain is not.
bool same_address(std::string_view a, std::string_view b) {
  const std::size_t at_a = a.rfind('@');
  const std::size_t at_b = b.rfind('@');
  if (at_a != at_b) return false;
  if (at_a == std::string_view::npos) return a == b;
  return a.substr(0, at_a) == b.substr(0, at_b) && iequals(a.substr(at_a), b.substr(at_b));
}

// Whether a header line starts the field `name` ("Bcc:", "bcc :").
bool starts_field(std::string_view line, std::string_view name) {
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view field = line.substr(0, colon);
  while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.remove_suffix(1);
  return iequals(field, name);
}

// The message without its Bcc and Resent-Bcc fields, folded continuation lines included: whoever
// receives the message must not learn who else got a blind copy. scan_headers decided where the
// header section ends, so every line before `header_end` is a field or a continuation.
std::string without_bcc(std::string_view m, std::size_t header_end) {
  std::string out;
  out.reserve(m.size());
  bool dropping = false;
  std::size_t pos = 0;
  while (pos < header_end) {
    const std::size_t newline = m.find('\n', pos);
    const std::size_t next = newline == std::string_view::npos ? m.size() : newline + 1;
    const std::string_view line = m.substr(pos, next - pos);
    const bool continuation = line.front() == ' ' || line.front() == '\t';
    if (!continuation) dropping = starts_field(line, "Bcc") || starts_field(line, "Resent-Bcc");
    if (!dropping) out.append(line);
    pos = next;
  }
  out.append(m.substr(header_end));
  return out;
}

bool is_atext_or_space(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ') return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos;
}

// -F as an RFC 5322 display name: control bytes (a CR or LF would start a new header field)
// become spaces, specials ("Doe, John") are quoted, non-ASCII is RFC 2047 encoded because the
// message may travel without SMTPUTF8.
std::string display_name(std::string_view raw) {
  std::string name;
  for (char c : raw) {
    const auto u = static_cast<unsigned char>(c);
    name += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  while (!name.empty() && name.front() == ' ') name.erase(0, 1);
  while (!name.empty() && name.back() == ' ') name.pop_back();

  if (has_8bit(name)) {
    // Encoded words of at most 45 bytes (75 characters once encoded, RFC 2047 §2), cut between
    // UTF-8 characters (§5: a word holds whole characters).
    std::string out;
    std::size_t pos = 0;
    while (pos < name.size()) {
      std::size_t n = std::min<std::size_t>(45, name.size() - pos);
      while (n > 1 && pos + n < name.size() && (static_cast<unsigned char>(name[pos + n]) & 0xC0) == 0x80) --n;
      if (!out.empty()) out += ' ';
      out += "=?UTF-8?B?" + smtp::encode_base64(std::string_view(name).substr(pos, n)) + "?=";
      pos += n;
    }
    return out;
  }
  bool plain = true;
  for (char c : name) plain = plain && is_atext_or_space(static_cast<unsigned char>(c));
  if (plain) return name;
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

// The From: field for a message that has none, at the end of the header section (where
// add_missing_headers puts Date: and Message-ID: too). A body that starts at once gets its blank
// line, or its first line would be read as a broken header field.
std::string with_from(std::string message, std::string_view address, std::string_view full_name) {
  const HeaderInfo info = scan_headers(message);
  const std::string name = display_name(full_name);
  std::string insert;
  if (info.header_end > 0 && message[info.header_end - 1] != '\n') insert += "\r\n";
  insert += "From: ";
  insert += name.empty() ? std::string(address) : name + " <" + std::string(address) + ">";
  insert += "\r\n";
  if (!info.blank_line && info.header_end < message.size()) insert += "\r\n";
  message.insert(info.header_end, insert);
  return message;
}

}  // namespace

Result<Submission> prepare_submission(const SendmailArgs& args, std::string message,
                                      std::string_view invoking_user, std::string_view hostname) {
  Submission s;
  const std::string user_address = std::string(invoking_user) + "@" + std::string(hostname);

  // Envelope sender: -f, else the address in From:, else user@hostname (the SPEC's order). A From:
  // that holds no usable address falls through: the upstream judges the header, not us.
  if (args.sender) {
    s.sender = args.sender->empty() ? std::string() : qualify(*args.sender, hostname);
    if (!s.sender.empty() && !smtp::is_valid_mailbox(s.sender, allow_utf8)) {
      return Error{"invalid sender address \"" + printable(s.sender) + "\" (from -f)"};
    }
  } else {
    std::optional<std::string> from_address;
    if (const auto from = header_value(message, "From")) {
      const std::vector<std::string> addresses = extract_addresses(*from);
      if (!addresses.empty()) {
        std::string a = qualify(addresses.front(), hostname);
        if (smtp::is_valid_mailbox(a, allow_utf8)) from_address = std::move(a);
      }
    }
    if (!from_address && !smtp::is_valid_mailbox(user_address, allow_utf8)) {
      return Error{"cannot make a sender address from user \"" + printable(invoking_user) + "\" and host name \"" +
                   printable(hostname) + "\" (pass -f ADDRESS)"};
    }
    s.sender = from_address.value_or(user_address);
  }

  std::vector<std::string> candidates = args.recipients;
  if (args.recipients_from_headers) {
    for (const std::string_view field : {"To", "Cc", "Bcc"}) {
      for (const std::string& value : header_values(message, field)) {
        for (std::string& a : extract_addresses(value)) candidates.push_back(std::move(a));
      }
    }
  }
  for (const std::string& candidate : candidates) {
    std::string rcpt = qualify(candidate, hostname);
    if (!smtp::is_valid_mailbox(rcpt, allow_utf8)) {
      return Error{"invalid recipient address \"" + printable(rcpt) + "\""};
    }
    bool seen = false;
    for (const std::string& r : s.recipients) seen = seen || same_address(r, rcpt);
    if (!seen) s.recipients.push_back(std::move(rcpt));
  }
  if (s.recipients.empty()) return Error{std::string(no_recipients_message)};

  s.smtputf8 = has_8bit(s.sender);
  for (const std::string& r : s.recipients) s.smtputf8 = s.smtputf8 || has_8bit(r);

  // Bcc goes with or without -t (as Postfix's cleanup does): a header listing blind copies must
  // not reach the other recipients, whoever chose them.
  message = without_bcc(message, scan_headers(message).header_end);
  // -F names the author only when the message does not: an existing From: is the author's own.
  if (!scan_headers(message).has_from) {
    const std::string_view from = s.sender.empty() ? std::string_view(user_address) : std::string_view(s.sender);
    message = with_from(std::move(message), from, args.full_name.value_or(""));
  }
  s.message = std::move(message);
  return s;
}

ExitCode submission_exit_code(const Error& error) {
  return error.message == no_recipients_message ? ExitCode::usage : ExitCode::data;
}

}  // namespace mailferry::message
