#include <catch2/catch.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "mailferry/message/sendmail_input.hpp"

using namespace mailferry::message;

namespace {

struct Read {
  std::string message;
  bool finished;
  bool too_big;
  bool operator==(const Read&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Read& r) {
  return os << "{" << ::Catch::Detail::stringify(r.message) << ", finished=" << r.finished
            << ", too_big=" << r.too_big << "}";
}

// Feeds `chunks` in order, taking output as it comes (as the CLI will), then signals end of file.
Read read(const std::vector<std::string>& chunks, bool ignore_dots, std::uint64_t max = 1 << 20) {
  SendmailInput in(ignore_dots, max);
  Read r{};
  for (const std::string& c : chunks) {
    in.feed(c);
    r.message += in.take();
  }
  in.end();
  r.message += in.take();
  r.finished = in.finished();
  r.too_big = in.too_big();
  return r;
}

std::vector<std::string> bytes_of(const std::string& s) {
  std::vector<std::string> out;
  for (char c : s) out.emplace_back(1, c);
  return out;
}

}  // namespace

TEST_CASE("sendmail input: line endings and dots, fed whole, byte by byte, split anywhere",
          "[sendmail][message]") {
  struct Case {
    std::string input;
    bool ignore_dots;
    std::string message;
    bool finished;
  };
  const auto c = GENERATE(values<Case>({
      {"", false, "", false},
      {"", true, "", false},
      {"Subject: x\n\nbody\n", false, "Subject: x\r\n\r\nbody\r\n", false},
      {"Subject: x\r\n\r\nbody\r\n", false, "Subject: x\r\n\r\nbody\r\n", false},
      {"a\rb\r", true, "a\r\nb\r\n", false},                          // bare CR is a line ending
      {"a\r\rb", true, "a\r\n\r\nb\r\n", false},
      {"a\r\r\n", true, "a\r\n\r\n", false},
      {"no final newline", true, "no final newline\r\n", false},
      {"x\n.\nafter\n", false, "x\r\n", true},                       // lone dot ends the input
      {"x\r\n.\r\nafter\r\n", false, "x\r\n", true},
      {".\n", false, "", true},
      {"x\n.", false, "x\r\n", true},                                  // a final "." at EOF, no newline
      {"x\n.\r", false, "x\r\n", true},
      {"x\n.\n", true, "x\r\n.\r\n", false},                          // -i: a dot is just a dot
      {"..\n", true, "..\r\n", false},
      {"..\n", false, ".\r\n", false},                                // Symfony's dot-stuffing undone
      {"..x\n...\n", false, ".x\r\n..\r\n", false},
      {".x\n", false, ".x\r\n", false},                               // not stuffed, kept
      {"a.\n.b\n", false, "a.\r\n.b\r\n", false},
      {".\rx\n", false, ".\r\nx\r\n", false},                         // "." with a bare CR: not the end
      {"..", false, ".\r\n", false},
      {"x\n .\n", false, "x\r\n .\r\n", false},
      {std::string("8bit \xc3\xa9\xff\x00 nul\n", 14), true, std::string("8bit \xc3\xa9\xff\x00 nul\r\n", 15), false},
      {"Subject: t\n\nline\n..\n.\n", false, "Subject: t\r\n\r\nline\r\n.\r\n", true},
  }));
  CAPTURE(c.input, c.ignore_dots);
  const Read expected{c.message, c.finished, false};
  CHECK(read({c.input}, c.ignore_dots) == expected);
  CHECK(read(bytes_of(c.input), c.ignore_dots) == expected);
  for (std::size_t cut = 0; cut <= c.input.size(); ++cut) {
    CAPTURE(cut);
    CHECK(read({c.input.substr(0, cut), c.input.substr(cut)}, c.ignore_dots) == expected);
  }
}

TEST_CASE("sendmail input: nothing after the lone dot is read", "[sendmail][message]") {
  SendmailInput in(false, 1000);
  in.feed("a\n.\ntrailing junk\n");
  CHECK(in.finished());
  in.feed("more junk\n");
  in.end();
  CHECK(in.take() == "a\r\n");
}

TEST_CASE("sendmail input: the size cap counts normalised bytes", "[sendmail][message]") {
  // "ab\n" is 4 bytes once normalised.
  CHECK(read({"ab\n"}, true, 4) == Read{"ab\r\n", false, false});
  CHECK(read({"ab\n"}, true, 3) == Read{"", false, true});
  CHECK(read(bytes_of("ab\nmore\n"), true, 5).too_big);

  SendmailInput in(true, 4);
  in.feed("abcdefgh");
  CHECK(in.too_big());
  CHECK(in.size() == 8);
  CHECK(in.take().empty());
}

TEST_CASE("sendmail input: a large message in odd chunks", "[sendmail][message]") {
  std::string input;
  std::string expected;
  for (int i = 0; i < 2000; ++i) {
    const std::string line =
        (i % 3 == 0 ? "." : "") + std::string(static_cast<std::size_t>(i % 1200), 'x') + (i % 7 == 0 ? "." : "");
    const bool stuffed = !line.empty() && line.front() == '.';   // as Symfony Mailer writes it
    input += (stuffed ? "." : "") + line + (i % 2 == 0 ? "\n" : "\r\n");
    expected += line + "\r\n";
  }
  input += ".\n";
  std::vector<std::string> chunks;
  for (std::size_t pos = 0, n = 1; pos < input.size(); pos += n, n = n * 7 % 4093 + 1) {
    chunks.push_back(input.substr(pos, n));
  }
  CHECK(read(chunks, false, 1 << 24) == Read{expected, true, false});
}
