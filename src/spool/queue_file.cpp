// queue_file.cpp: the envelope record format.
//
// One record per line, "<TYPE> <value>\n", TYPE a single character:
//   V version (always first)          S sender            U user            C client
//   L listener                        B BODY=8BITMIME 0|1 I SMTPUTF8 0|1
//   A arrival, microseconds since the epoch               Z size of the message file in bytes
//   N delivery attempts so far        T next attempt, microseconds since the epoch
//   P last upstream reply             R recipient: "<state> <address> <last reply>"
//   E number of records before it (always last)
// Values are escaped: bytes below 0x21 (so space, CR, LF and NUL), '%' and 0x7f become %XX
// (upper-case hex); every other byte, UTF-8 included, is written as is. Hence a value never
// contains a space or a newline, which is what lets R carry three fields and lets a line end
// at the first '\n'.
//
// The decoder is strict on purpose (Postfix's record.c): it accepts only what the encoder writes,
// so a torn write, a foreign file or a flipped byte is an Error — and the spool quarantines the
// file — rather than an envelope with a recipient missing. The E record is what makes a truncated
// file detectable: without it, a file cut after a complete R line would look valid.
#include "mailferry/spool/queue_file.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>

namespace mailferry::spool {

namespace {

constexpr std::string_view format_version = "1";
constexpr std::string_view hex_digits = "0123456789ABCDEF";

bool needs_escape(unsigned char c) { return c < 0x21 || c == '%' || c == 0x7f; }

void append_escaped(std::string& out, std::string_view value) {
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (needs_escape(c)) {
      out.push_back('%');
      out.push_back(hex_digits[c >> 4]);
      out.push_back(hex_digits[c & 0xF]);
    } else {
      out.push_back(ch);
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;   // lower case is not what the encoder writes: rejected
}

// Only the canonical form decodes: a raw byte that should have been escaped, or an escape of a
// byte that should have been raw, is damage, not an alternative spelling.
std::optional<std::string> unescape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c != '%') {
      if (needs_escape(c)) return std::nullopt;
      out.push_back(value[i]);
      continue;
    }
    if (i + 2 >= value.size()) return std::nullopt;   // '%' needs two hex digits
    const int hi = hex_value(value[i + 1]);
    const int lo = hex_value(value[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
    if (!needs_escape(decoded)) return std::nullopt;
    out.push_back(static_cast<char>(decoded));
    i += 2;
  }
  return out;
}

// Decimal, no sign, no leading zeros, no overflow.
std::optional<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (max - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

// Microseconds since the epoch, possibly negative, and small enough that WallTime (nanoseconds
// in libstdc++) can hold it: a fuzzed file must not overflow the conversion.
std::optional<WallTime> parse_time(std::string_view text) {
  using std::chrono::microseconds;
  constexpr auto limit = static_cast<std::uint64_t>(
      std::chrono::duration_cast<microseconds>(WallTime::duration::max()).count());
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) text.remove_prefix(1);
  const auto magnitude = parse_unsigned(text, limit);
  if (!magnitude || (negative && *magnitude == 0)) return std::nullopt;
  const auto us = static_cast<std::int64_t>(*magnitude);
  return WallTime(std::chrono::duration_cast<WallTime::duration>(microseconds(negative ? -us : us)));
}

std::string time_text(WallTime t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

std::string_view state_text(message::RecipientState s) {
  switch (s) {
    case message::RecipientState::pending: return "pending";
    case message::RecipientState::delivered: return "delivered";
    case message::RecipientState::failed: return "failed";
  }
  return "pending";   // unreachable: every enumerator is handled above
}

std::optional<message::RecipientState> parse_state(std::string_view text) {
  if (text == "pending") return message::RecipientState::pending;
  if (text == "delivered") return message::RecipientState::delivered;
  if (text == "failed") return message::RecipientState::failed;
  return std::nullopt;
}

class Encoder {
 public:
  void raw(char type, std::string_view value) {
    out_.push_back(type);
    out_.push_back(' ');
    out_.append(value);
    out_.push_back('\n');
    ++count_;
  }
  void escaped(char type, std::string_view value) {
    out_.push_back(type);
    out_.push_back(' ');
    append_escaped(out_, value);
    out_.push_back('\n');
    ++count_;
  }
  void recipient(const message::Recipient& r) {
    out_.append("R ");
    out_.append(state_text(r.state));
    out_.push_back(' ');
    append_escaped(out_, r.address);
    out_.push_back(' ');
    append_escaped(out_, r.last_reply);
    out_.push_back('\n');
    ++count_;
  }
  std::string finish() && {
    out_.append("E ");
    out_.append(std::to_string(count_));
    out_.push_back('\n');
    return std::move(out_);
  }

 private:
  std::string out_;
  std::size_t count_ = 0;
};

// The singleton records, in the order the encoder writes them. All are required.
constexpr std::string_view singleton_types = "VSUCLBIAZNTP";

Error decode_error(std::size_t line, const std::string& what) {
  return Error{"envelope line " + std::to_string(line) + ": " + what};
}

}  // namespace

std::string encode_envelope(const message::Envelope& e) {
  Encoder enc;
  enc.raw('V', format_version);
  enc.escaped('S', e.sender);
  enc.escaped('U', e.user);
  enc.escaped('C', e.client);
  enc.escaped('L', e.listener);
  enc.raw('B', e.body_8bit ? "1" : "0");
  enc.raw('I', e.smtputf8 ? "1" : "0");
  enc.raw('A', time_text(e.arrival));
  enc.raw('Z', std::to_string(e.size));
  enc.raw('N', std::to_string(e.attempts));
  enc.raw('T', time_text(e.next_attempt));
  enc.escaped('P', e.last_reply);
  for (const auto& r : e.recipients) enc.recipient(r);
  return std::move(enc).finish();
}

Result<message::Envelope> decode_envelope(std::string_view bytes) {
  message::Envelope e;
  std::array<bool, singleton_types.size()> seen{};
  std::size_t records = 0;
  std::size_t line_no = 0;
  bool ended = false;

  while (!bytes.empty()) {
    ++line_no;
    if (ended) return decode_error(line_no, "bytes after the E record");
    const auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      return decode_error(line_no, "record not terminated by a newline (file truncated?)");
    }
    const std::string_view line = bytes.substr(0, nl);
    bytes.remove_prefix(nl + 1);

    if (line.size() < 2 || line[1] != ' ') return decode_error(line_no, "malformed record");
    const char type = line[0];
    const std::string_view value = line.substr(2);

    if (records == 0 && type != 'V') return decode_error(line_no, "first record is not the version");

    if (type == 'E') {
      const auto count = parse_unsigned(value, std::numeric_limits<std::uint64_t>::max());
      if (!count) return decode_error(line_no, "bad record count in E record");
      if (*count != records) {
        return decode_error(line_no, "E record counts " + std::to_string(*count) + " records, file has " +
                                         std::to_string(records));
      }
      ended = true;
      continue;
    }

    if (type == 'R') {
      const auto sp1 = value.find(' ');
      const auto sp2 = sp1 == std::string_view::npos ? sp1 : value.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos || value.find(' ', sp2 + 1) != std::string_view::npos) {
        return decode_error(line_no, "R record needs three fields");
      }
      const auto state = parse_state(value.substr(0, sp1));
      auto address = unescape(value.substr(sp1 + 1, sp2 - sp1 - 1));
      auto reply = unescape(value.substr(sp2 + 1));
      if (!state) return decode_error(line_no, "unknown recipient state");
      if (!address || !reply) return decode_error(line_no, "bad escape in R record");
      e.recipients.push_back({std::move(*address), *state, std::move(*reply)});
      ++records;
      continue;
    }

    const auto slot = singleton_types.find(type);
    if (slot == std::string_view::npos) {
      return decode_error(line_no, std::string("unknown record type '") + type + "'");
    }
    if (seen[slot]) return decode_error(line_no, std::string("duplicate ") + type + " record");
    seen[slot] = true;
    ++records;

    auto text = [&](std::string& field) -> bool {
      auto v = unescape(value);
      if (v) field = std::move(*v);
      return v.has_value();
    };
    auto flag = [&](bool& field) -> bool {
      if (value != "0" && value != "1") return false;
      field = value == "1";
      return true;
    };
    auto time = [&](WallTime& field) -> bool {
      const auto t = parse_time(value);
      if (t) field = *t;
      return t.has_value();
    };
    bool ok = false;
    switch (type) {
      case 'V':
        if (value != format_version) {
          return decode_error(line_no, "unsupported envelope version \"" + std::string(value) + "\"");
        }
        ok = true;
        break;
      case 'S': ok = text(e.sender); break;
      case 'U': ok = text(e.user); break;
      case 'C': ok = text(e.client); break;
      case 'L': ok = text(e.listener); break;
      case 'B': ok = flag(e.body_8bit); break;
      case 'I': ok = flag(e.smtputf8); break;
      case 'A': ok = time(e.arrival); break;
      case 'T': ok = time(e.next_attempt); break;
      case 'P': ok = text(e.last_reply); break;
      case 'Z': {
        const auto n = parse_unsigned(value, std::numeric_limits<std::uint64_t>::max());
        if (n) e.size = *n;
        ok = n.has_value();
        break;
      }
      case 'N': {
        const auto n = parse_unsigned(value, std::numeric_limits<std::uint32_t>::max());
        if (n) e.attempts = static_cast<std::uint32_t>(*n);
        ok = n.has_value();
        break;
      }
      default: break;   // a char, not an enum: singleton_types.find() above already vetted it
    }
    if (!ok) return decode_error(line_no, std::string("bad value in ") + type + " record");
  }

  if (!ended) return Error{"envelope: missing E record (file truncated?)"};
  for (std::size_t i = 0; i < singleton_types.size(); ++i) {
    if (!seen[i]) return Error{std::string("envelope: missing ") + singleton_types[i] + " record"};
  }
  return e;
}

}  // namespace mailferry::spool
