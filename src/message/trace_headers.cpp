// trace_headers.cpp: formatting and folding of the fields mailferry adds.
#include "mailferry/message/trace_headers.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

namespace mailferry::message {

namespace {

constexpr std::size_t max_line = 78;   // RFC 5322 §2.1.1: SHOULD be no more than 78 characters

// For a single token taken from the client or from DNS (HELO, reverse name, address): printable
// ASCII other than the comment delimiters, so it cannot end the comment, add a line, or smuggle a
// control byte into every log that shows the header.
std::string token(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '(' || c == ')') c = '?';
  }
  return out;
}

// An envelope address may be UTF-8 (SMTPUTF8) or contain quoted spaces; only what could break the
// line or the angle brackets is replaced.
std::string address(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '<' || c == '>') c = '?';
  }
  return out;
}

// Appends groups of words: each group after the first starts a continuation line, and a word
// that would take its line past 78 characters moves to a new continuation line. A single word
// longer than that stays whole: it has no white space to fold at.
class Folder {
 public:
  explicit Folder(std::string name) : out_(std::move(name)), line_(out_.size()) {}
  void group(const std::vector<std::string>& words) {
    for (std::size_t i = 0; i < words.size(); ++i) {
      const bool new_line = (i == 0 && !first_group_) || (line_ > 1 && line_ + 1 + words[i].size() > max_line);
      if (new_line) {
        out_ += "\r\n\t";
        line_ = 1;
      } else {
        out_ += ' ';
        ++line_;
      }
      out_ += words[i];
      line_ += words[i].size();
    }
    first_group_ = false;
  }
  std::string finish() && { return std::move(out_) + "\r\n"; }

 private:
  std::string out_;
  std::size_t line_;
  bool first_group_ = true;
};

}  // namespace

std::string rfc5322_date(WallTime when) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // floor, not to_time_t: a time just before the epoch must not round up into the next second.
  const std::time_t t =
      static_cast<std::time_t>(std::chrono::floor<std::chrono::seconds>(when).time_since_epoch().count());
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) {
    const std::time_t epoch = 0;
    gmtime_r(&epoch, &tm);
  }
  // Not strftime: %a and %b follow the locale, and the RFC wants these English names.
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
                months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string received_header(const ReceivedInfo& info) {
  Folder folder("Received:");
  if (!info.helo.empty() || !info.client_address.empty()) {
    std::string client = info.client_rdns_or_empty.empty() ? "unknown" : token(info.client_rdns_or_empty);
    if (!info.client_address.empty()) {
      // RFC 5321 §4.1.3: an IPv6 address literal is tagged "IPv6:".
      const bool v6 = info.client_address.find(':') != std::string::npos &&
                      info.client_address.rfind("IPv6:", 0) != 0;
      client += std::string(" [") + (v6 ? "IPv6:" : "") + token(info.client_address) + "]";
    }
    folder.group({"from", info.helo.empty() ? "unknown" : token(info.helo), "(" + client + ")"});
  }
  std::vector<std::string> by{"by", token(info.by_host.empty() ? "localhost" : info.by_host), "(mailferry)"};
  if (!info.protocol.empty()) {
    by.push_back("with");
    by.push_back(token(info.protocol));
  }
  if (!info.queue_id.empty()) {
    by.push_back("id");
    by.push_back(token(info.queue_id));
  }
  if (info.for_recipient.empty()) {
    by.back() += ';';
    folder.group(by);
    folder.group({rfc5322_date(info.when)});
  } else {
    folder.group(by);
    folder.group({"for", "<" + address(info.for_recipient) + ">;", rfc5322_date(info.when)});
  }
  return std::move(folder).finish();
}

std::string date_header(WallTime when) { return "Date: " + rfc5322_date(when) + "\r\n"; }

std::string message_id_header(std::string_view queue_id, std::string_view hostname) {
  std::string out = "Message-ID: <";
  out += queue_id;
  out += '@';
  out += hostname.empty() ? std::string_view("localhost") : hostname;
  out += ">\r\n";
  return out;
}

std::string add_missing_headers(std::string_view message, const HeaderInfo& info, WallTime arrival,
                                std::string_view queue_id, std::string_view hostname) {
  // Added at the end of the header section, as Postfix's cleanup does: the Received: that
  // mailferry put first stays the topmost trace header (RFC 5321 §4.4).
  std::string added;
  if (!info.has_date) added += date_header(arrival);
  if (!info.has_message_id) added += message_id_header(queue_id, hostname);
  if (added.empty()) return std::string(message);
  const bool body_line_ends_header = !info.blank_line && info.header_end < message.size();
  std::string out;
  out.reserve(message.size() + added.size() + 2);
  out += message.substr(0, info.header_end);
  out += added;
  if (body_line_ends_header) out += "\r\n";
  out += message.substr(info.header_end);
  return out;
}

}  // namespace mailferry::message
