// fuzz_header_scan.cpp: the header scan used for trace headers and `sendmail -t`
// (message::scan_headers, header_value(s), extract_addresses), and the sendmail stdin normaliser
// (message::SendmailInput), on arbitrary messages.
// Byte 0: bit 0 = -i (ignore dots), bits 1-7 = chunking seed for SendmailInput; the rest is the message.
// Invariants: header_end lies inside the message and points at a blank line when it says so;
// header_value is the first of header_values; addresses carry no line break; SendmailInput's
// output has only CRLF line ends, ends in CRLF, and is the same however stdin was split.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "mailferry/message/header_scan.hpp"
#include "mailferry/message/sendmail_input.hpp"

using namespace mailferry;

namespace {

std::string normalise(std::string_view input, bool ignore_dots, std::uint8_t seed, std::uint64_t max_size,
                      bool& too_big) {
  message::SendmailInput in(ignore_dots, max_size);
  std::string out;
  fuzz::Chunker chunks(input, seed);
  while (!chunks.done() && !in.finished()) {
    in.feed(chunks.next());
    out += in.take();
  }
  in.end();
  out += in.take();
  too_big = in.too_big();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Control ctl(data, size);
  const std::uint8_t flags = ctl.byte();
  const std::string_view msg(reinterpret_cast<const char*>(data) + ctl.used(), size - ctl.used());

  const auto info = message::scan_headers(msg);
  FUZZ_CHECK(info.header_end <= msg.size(), "header_end past the message");
  if (info.blank_line) {
    const std::string_view at = msg.substr(info.header_end);
    // A lone CR as the very last byte counts as a line end too (the scan strips one CR before LF
    // or the end); both callers normalise line ends before scanning, so it never reaches them.
    FUZZ_CHECK(at.rfind("\r\n", 0) == 0 || at.rfind("\n", 0) == 0 || at == "\r",
               "blank_line but no blank line at header_end");
  }
  for (std::string_view name : {"To", "Cc", "Bcc", "Date", "Message-ID", "From", "Received"}) {
    const auto first = message::header_value(msg, name);
    const auto all = message::header_values(msg, name);
    FUZZ_CHECK(first.has_value() == !all.empty(), "header_value and header_values disagree on presence");
    if (first) FUZZ_CHECK(*first == all.front(), "header_value is not the first of header_values");
    for (const auto& v : all) {
      for (const auto& a : message::extract_addresses(v)) {
        FUZZ_CHECK(!a.empty(), "empty address extracted");
        FUZZ_CHECK(a.find('\n') == std::string::npos && a.find('\r') == std::string::npos, "line break in an address");
      }
    }
  }
  if (msg.size() <= 4096) message::extract_addresses(msg);   // a value nobody unfolded

  const bool ignore_dots = (flags & 1) != 0;
  bool too_big = false;
  const std::string whole = normalise(msg, ignore_dots, 0, 1u << 20, too_big);
  FUZZ_CHECK(!too_big, "a short input is too big");
  FUZZ_CHECK(fuzz::crlf_only(whole), "bare CR or LF after sendmail normalisation");
  FUZZ_CHECK(whole.empty() || whole.substr(whole.size() - 2) == "\r\n", "normalised message does not end in CRLF");
  const std::string split = normalise(msg, ignore_dots, static_cast<std::uint8_t>(flags >> 1 | 1), 1u << 20, too_big);
  FUZZ_CHECK(split == whole, "sendmail input depends on how stdin was split");
  // A limit below the size: too_big, and nothing kept.
  if (whole.size() > 8) {
    std::string small = normalise(msg, ignore_dots, 0, whole.size() / 2, too_big);
    FUZZ_CHECK(too_big, "max_size not enforced");
  }
  return 0;
}
