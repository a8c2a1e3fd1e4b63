// queue_file.tests.cpp: envelope encode/decode — round trips with hostile bytes, every rejection,
// and torn files (every prefix of a valid encoding must fail).
#include "mailferry/spool/queue_file.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

using mailferry::WallTime;
using mailferry::message::Envelope;
using mailferry::message::Recipient;
using mailferry::message::RecipientState;
using mailferry::spool::decode_envelope;
using mailferry::spool::encode_envelope;

namespace {

WallTime at_us(long long us) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::microseconds(us)));
}

// Every byte that the format treats specially, plus UTF-8 and the high bytes.
std::string hostile(std::string_view tag) {
  std::string s(tag);
  s += std::string("\r\n\0 %%20 %zz\t\x7f\x01\xff\xfe", 17);
  s += "caf\xc3\xa9 \xe2\x9c\x89 E 3\nV 1\n";
  return s;
}

Envelope sample() {
  Envelope e;
  e.sender = "sender@example.com";
  e.recipients = {{"a@example.com", RecipientState::pending, ""},
                  {"b@example.org", RecipientState::delivered, "250 2.0.0 ok"},
                  {"c@example.net", RecipientState::failed, "550 5.1.1 no such user"}};
  e.body_8bit = true;
  e.smtputf8 = false;
  e.user = "wordpress";
  e.client = "192.0.2.7";
  e.listener = "0.0.0.0:587";
  e.arrival = at_us(1700000000123456);
  e.size = 4312;
  e.attempts = 3;
  e.next_attempt = at_us(1700000600000000);
  e.last_reply = "451 4.3.0 try later";
  return e;
}

Envelope hostile_sample() {
  Envelope e;
  e.sender = hostile("sender");
  e.recipients = {{hostile("rcpt1"), RecipientState::pending, hostile("reply1")},
                  {"", RecipientState::failed, ""},
                  {hostile("rcpt3"), RecipientState::delivered, hostile("reply3")}};
  e.body_8bit = false;
  e.smtputf8 = true;
  e.user = hostile("user");
  e.client = hostile("client");
  e.listener = hostile("listener");
  e.arrival = at_us(-1);
  e.size = 18446744073709551615ULL;
  e.attempts = 4294967295U;
  e.next_attempt = at_us(0);
  e.last_reply = hostile("last");
  return e;
}

std::string replace_line(std::string text, std::string_view from, std::string_view to) {
  const auto pos = text.find(from);
  REQUIRE(pos != std::string::npos);
  text.replace(pos, from.size(), to);
  return text;
}

}  // namespace

TEST_CASE("envelope: round trip", "[spool][queue_file]") {
  const Envelope e = GENERATE(sample(), hostile_sample(), Envelope{});
  const std::string bytes = encode_envelope(e);
  CAPTURE(bytes);
  auto decoded = decode_envelope(bytes);
  REQUIRE(decoded.ok());
  CHECK(*decoded == e);
  CHECK(encode_envelope(*decoded) == bytes);
}

TEST_CASE("envelope: encoding is line-structured, version first, END last", "[spool][queue_file]") {
  const std::string bytes = encode_envelope(hostile_sample());
  CHECK(bytes.rfind("V 1\n", 0) == 0);
  CHECK(bytes.ends_with("E 15\n"));   // 12 singletons + 3 recipients before it
  CHECK(bytes.find('\0') == std::string::npos);
  CHECK(bytes.find('\r') == std::string::npos);
  std::size_t lines = 0;
  for (char c : bytes) lines += c == '\n';
  CHECK(lines == 16);
}

TEST_CASE("envelope: the documented format", "[spool][queue_file]") {
  Envelope e;
  e.sender = "a b%@x";
  e.recipients = {{"r@x", RecipientState::pending, "451 4.4.1 later"}};
  e.arrival = at_us(1700000000000001);
  e.size = 12;
  CHECK(encode_envelope(e) ==
        "V 1\nS a%20b%25@x\nU \nC \nL \nB 0\nI 0\nA 1700000000000001\nZ 12\nN 0\nT 0\nP \n"
        "R pending r@x 451%204.4.1%20later\nE 13\n");
}

TEST_CASE("envelope: decode rejects damaged files", "[spool][queue_file]") {
  const std::string good = encode_envelope(sample());
  REQUIRE(decode_envelope(good).ok());
  auto [name, bytes] = GENERATE_COPY(table<std::string, std::string>({
      {"empty", ""},
      {"missing version", good.substr(4)},
      {"unknown version", replace_line(good, "V 1\n", "V 2\n")},
      {"empty version", replace_line(good, "V 1\n", "V \n")},
      {"version not first", replace_line(good, "V 1\nS sender@example.com\n", "S sender@example.com\nV 1\n")},
      {"duplicate version", replace_line(good, "S sender", "V 1\nS sender")},
      {"unknown record type", replace_line(good, "U wordpress\n", "Q wordpress\n")},
      {"lower-case record type", replace_line(good, "U wordpress\n", "u wordpress\n")},
      {"two-letter record type", replace_line(good, "U wordpress\n", "UU wordpress\n")},
      {"duplicate sender", replace_line(good, "U wordpress\n", "S other@example.com\n")},
      {"duplicate size", replace_line(good, "N 3\n", "Z 1\n")},
      {"missing user", replace_line(good, "U wordpress\n", "")},
      {"missing END", good.substr(0, good.size() - 5)},
      {"END count too small", replace_line(good, "E 15\n", "E 14\n")},
      {"END count too large", replace_line(good, "E 15\n", "E 16\n")},
      {"END count not a number", replace_line(good, "E 15\n", "E x\n")},
      {"END count with leading zero", replace_line(good, "E 15\n", "E 015\n")},
      {"END without newline", good.substr(0, good.size() - 1)},
      {"trailing bytes after END", good + "x"},
      {"trailing newline after END", good + "\n"},
      {"second END", good + "E 15\n"},
      {"empty line", replace_line(good, "U wordpress\n", "\n")},
      {"record without space", replace_line(good, "P 451", "P451")},
      {"raw space in value", replace_line(good, "U wordpress", "U word press")},
      {"raw CR in value", replace_line(good, "U wordpress", "U word\rpress")},
      {"raw NUL in value", replace_line(good, "U wordpress", std::string("U word\0press", 12))},
      {"raw DEL in value", replace_line(good, "U wordpress", "U word\x7fpress")},
      {"raw percent", replace_line(good, "U wordpress", "U 100%")},
      {"short escape", replace_line(good, "U wordpress", "U word%2")},
      {"lower-case escape", replace_line(good, "U wordpress", "U word%0d")},
      {"non-hex escape", replace_line(good, "U wordpress", "U word%GG")},
      {"escaped plain byte", replace_line(good, "U wordpress", "U word%41")},
      {"size negative", replace_line(good, "Z 4312", "Z -1")},
      {"size leading zero", replace_line(good, "Z 4312", "Z 04312")},
      {"size with plus", replace_line(good, "Z 4312", "Z +4312")},
      {"size overflow", replace_line(good, "Z 4312", "Z 18446744073709551616")},
      {"size empty", replace_line(good, "Z 4312", "Z ")},
      {"attempts overflow", replace_line(good, "N 3", "N 4294967296")},
      {"attempts hex", replace_line(good, "N 3", "N 0x3")},
      {"arrival not a number", replace_line(good, "A 1700000000123456", "A soon")},
      {"arrival minus zero", replace_line(good, "A 1700000000123456", "A -0")},
      {"arrival beyond WallTime", replace_line(good, "A 1700000000123456", "A 9300000000000000000")},
      {"arrival space", replace_line(good, "A 1700000000123456", "A 17 00")},
      {"flag not 0/1", replace_line(good, "B 1", "B 2")},
      {"flag word", replace_line(good, "B 1", "B true")},
      {"recipient unknown state", replace_line(good, "R pending", "R queued")},
      {"recipient two fields", replace_line(good, "R pending a@example.com ", "R pending a@example.com")},
      {"recipient four fields", replace_line(good, "R pending a@example.com ", "R pending a@example.com x ")},
      {"recipient bad escape", replace_line(good, "R pending a@example.com", "R pending a%ZZ")},
  }));
  CAPTURE(name, bytes);
  const auto r = decode_envelope(bytes);
  CHECK_FALSE(r.ok());
  if (!r.ok()) CHECK_FALSE(r.error().message.empty());
}

TEST_CASE("envelope: every prefix of a valid file fails to decode (torn write)", "[spool][queue_file]") {
  const std::string bytes = encode_envelope(GENERATE(sample(), hostile_sample(), Envelope{}));
  REQUIRE(decode_envelope(bytes).ok());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(decode_envelope(std::string_view(bytes).substr(0, n)).ok());
  }
}

TEST_CASE("envelope: a flipped byte either fails or decodes to exactly that file", "[spool][queue_file]") {
  // The decoder accepts only canonical encodings, so anything it accepts re-encodes byte for byte:
  // damage can never be silently "repaired" into a different envelope.
  const std::string bytes = encode_envelope(sample());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char x : {0x01, 0x20, 0x80}) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(static_cast<unsigned char>(damaged[i]) ^ x);
      const auto r = decode_envelope(damaged);
      CAPTURE(i, x);
      if (r.ok()) CHECK(encode_envelope(*r) == damaged);
    }
  }
}

TEST_CASE("envelope: recipients survive in order and may be many", "[spool][queue_file]") {
  Envelope e = sample();
  e.recipients.clear();
  for (int i = 0; i < 500; ++i) e.recipients.push_back({"r" + std::to_string(i) + "@example.com", RecipientState::pending, ""});
  auto r = decode_envelope(encode_envelope(e));
  REQUIRE(r.ok());
  CHECK(r->recipients == e.recipients);
}
