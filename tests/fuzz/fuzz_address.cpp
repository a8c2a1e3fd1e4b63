// fuzz_address.cpp: RFC 5321 path parsing (smtp::parse_path, smtp::is_valid_mailbox).
// Byte 0 picks SMTPUTF8 and the path limit; the rest is the text after "MAIL FROM:" / "RCPT TO:".
// Invariants: an accepted path fits the limit, its address is a valid mailbox with no control
// byte (so it cannot inject into a log line, an envelope file or the upstream dialogue) and no
// 8-bit byte without SMTPUTF8, and `rest` is exactly the text after the closing '>'.
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"
#include "mailferry/smtp/address.hpp"

using namespace mailferry;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Control ctl(data, size);
  const std::uint8_t flags = ctl.byte();
  const bool utf8 = (flags & 1) != 0;
  const std::size_t max_path = (flags & 2) ? 256 : 16 + (flags >> 2);
  const std::string_view text(reinterpret_cast<const char*>(data) + ctl.used(), size - ctl.used());

  const auto path = smtp::parse_path(text, utf8, max_path);
  if (path) {
    FUZZ_CHECK(path->address.size() + 2 <= max_path, "accepted path longer than max_path");
    FUZZ_CHECK(path->rest.data() + path->rest.size() == text.data() + text.size(), "rest is not a suffix");
    FUZZ_CHECK(path->rest.size() < text.size() && text[text.size() - path->rest.size() - 1] == '>',
               "rest does not follow the closing '>'");
    for (char c : path->address) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u >= 0x20 && u != 0x7f, "control byte in an accepted address");
      FUZZ_CHECK(utf8 || u < 0x80, "8-bit address accepted without SMTPUTF8");
    }
    if (!path->address.empty()) {
      FUZZ_CHECK(smtp::is_valid_mailbox(path->address, utf8), "accepted address is not a valid mailbox");
      // What is accepted without SMTPUTF8 is accepted with it.
      FUZZ_CHECK(utf8 || smtp::parse_path(text, true, max_path), "SMTPUTF8 refuses what plain ASCII accepts");
    }
  }
  // is_valid_mailbox on the raw text too (config values reach it unbracketed).
  if (smtp::is_valid_mailbox(text, utf8)) {
    for (char c : text) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20, "control byte in a valid mailbox");
  }
  return 0;
}
