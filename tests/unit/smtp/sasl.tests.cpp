// sasl.tests.cpp: base64 (RFC 4648 vectors, strictness) and the PLAIN / LOGIN / XOAUTH2 messages.
#include "mailferry/smtp/sasl.hpp"

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

using mailferry::Secret;
using namespace mailferry::smtp;
using namespace std::string_literals;

TEST_CASE("base64: RFC 4648 section 10 vectors, both ways", "[sasl][base64]") {
  auto [plain, encoded] = GENERATE(table<std::string, std::string>({
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  }));
  CAPTURE(plain);
  CHECK(encode_base64(plain) == encoded);
  auto decoded = decode_base64(encoded);
  REQUIRE(decoded.ok());
  CHECK(*decoded == plain);
}

TEST_CASE("base64: every byte value round-trips, at every length mod 3", "[sasl][base64]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  const std::size_t cut = GENERATE(256u, 255u, 254u, 1u);
  const std::string bytes = all.substr(0, cut);
  CAPTURE(cut);
  auto decoded = decode_base64(encode_base64(bytes));
  REQUIRE(decoded.ok());
  CHECK(*decoded == bytes);
}

TEST_CASE("base64: strict decoding refuses everything non-canonical", "[sasl][base64]") {
  auto [text, why] = GENERATE(table<std::string, std::string_view>({
      {"Zg", "missing padding"},
      {"Zg=", "short padding"},
      {"Zm9vY", "length not a multiple of 4"},
      {"Z===", "three padding characters"},
      {"====", "padding only"},
      {"Zm9v=", "padding after a full group"},
      {"Zg==Zg==", "padding in the middle"},
      {"Zm=v", "'=' inside a group"},
      {"Zh==", "non-zero bits before '=='"},
      {"Zm9=", "non-zero bits before '='"},
      {"Zm9v\r\n", "trailing CRLF"},
      {" Zm9v", "leading space"},
      {"Zm 9v", "space inside"},
      {"Zm9v\t", "tab"},
      {"Zm-v", "URL-safe alphabet '-'"},
      {"Zm_v", "URL-safe alphabet '_'"},
      {"Zm9*", "not in the alphabet"},
      {"Zm9\xc3", "non-ASCII"},
      {"Zm\0v"s, "NUL"},
  }));
  CAPTURE(text, why);
  CHECK_FALSE(decode_base64(text).ok());
}

TEST_CASE("AUTH PLAIN: valid messages decode", "[sasl][plain]") {
  auto [message, authzid, user, password] = GENERATE(table<std::string, std::string, std::string, std::string>({
      {"\0user\0pass"s, "", "user", "pass"},
      {"admin\0user\0pass"s, "admin", "user", "pass"},
      {"\0wordpress@example.com\0p4$$ w0rd: with spaces"s, "", "wordpress@example.com", "p4$$ w0rd: with spaces"},
      {"\0\xc3\xa9l\xc3\xa8ve\0m\xc3\xb6t"s, "", "\xc3\xa9l\xc3\xa8ve", "m\xc3\xb6t"},   // UTF-8 (RFC 4616 §2)
      {"\0user\0"s, "", "user", ""},   // an empty password decodes; verification then fails (535)
      {"\0"s + std::string(max_sasl_field, 'u') + "\0"s + std::string(max_sasl_field, 'p'), "",
       std::string(max_sasl_field, 'u'), std::string(max_sasl_field, 'p')},
  }));
  CAPTURE(user);
  auto creds = decode_plain(encode_base64(message));
  REQUIRE(creds.ok());
  CHECK(creds->authzid == authzid);
  CHECK(creds->user == user);
  CHECK(creds->password.reveal() == password);
}

TEST_CASE("AUTH PLAIN: malformed messages are refused", "[sasl][plain]") {
  auto [message, why] = GENERATE(table<std::string, std::string_view>({
      {"", "empty"},
      {"userpass", "no NUL"},
      {"user\0pass"s, "one NUL"},
      {"\0\0pass"s, "empty user"},
      {"\0\0"s, "empty user and password"},
      {"\0user\0pa\0ss"s, "NUL inside the password"},
      {"\0user\0pass\0"s, "trailing NUL"},
      {"\0"s + std::string(max_sasl_field + 1, 'u') + "\0pass"s, "user too long"},
      {"\0user\0"s + std::string(max_sasl_field + 1, 'p'), "password too long"},
      {std::string(max_sasl_field + 1, 'a') + "\0user\0pass"s, "authzid too long"},
  }));
  CAPTURE(why);
  CHECK_FALSE(decode_plain(encode_base64(message)).ok());
}

TEST_CASE("AUTH PLAIN: bad base64 is refused before anything else", "[sasl][plain]") {
  const std::string text = GENERATE(as<std::string>{}, "", "=", "*", "AHVzZXIAcGFzcw", "AHVzZXIAcGFzcw==\r\n", "AHVzZXIAcGFzcw== ");
  CAPTURE(text);
  CHECK_FALSE(decode_plain(text).ok());
}

TEST_CASE("AUTH PLAIN: encode_plain is what clients send, and decodes back", "[sasl][plain]") {
  CHECK(encode_plain("user", Secret("pass")) == "AHVzZXIAcGFzcw==");
  auto creds = decode_plain(encode_plain("a@example.com", Secret("s3cret")));
  REQUIRE(creds.ok());
  CHECK(creds->authzid.empty());
  CHECK(creds->user == "a@example.com");
  CHECK(creds->password.reveal() == "s3cret");
}

TEST_CASE("AUTH PLAIN: the decoded password never prints", "[sasl][plain]") {
  auto creds = decode_plain(encode_plain("user", Secret("hunter2")));
  REQUIRE(creds.ok());
  std::ostringstream os;
  os << creds->password;
  CHECK(os.str() == "********");
}

TEST_CASE("AUTH LOGIN: prompts and responses", "[sasl][login]") {
  CHECK(login_user_prompt() == "VXNlcm5hbWU6");
  CHECK(login_password_prompt() == "UGFzc3dvcmQ6");

  auto [line, ok, value] = GENERATE(table<std::string, bool, std::string>({
      {"dXNlcg==", true, "user"},
      {"", true, ""},                                        // empty: the caller decides
      {encode_base64(std::string(max_sasl_field, 'x')), true, std::string(max_sasl_field, 'x')},
      {encode_base64(std::string(max_sasl_field + 1, 'x')), false, ""},
      {encode_base64("us\0er"s), false, ""},                // NUL
      {"dXNlcg", false, ""},                                 // bad padding
      {"dXNlcg== ", false, ""},                              // whitespace
      {"*", false, ""},                                      // the cancel line is the caller's business
  }));
  CAPTURE(line);
  auto decoded = decode_login_response(line);
  REQUIRE(decoded.ok() == ok);
  if (ok) CHECK(*decoded == value);
}

TEST_CASE("XOAUTH2: the initial response matches Google's documented example", "[sasl][xoauth2]") {
  // https://developers.google.com/gmail/imap/xoauth2-protocol, "SASL XOAUTH2 initial client response"
  CHECK(encode_xoauth2("someuser@example.com", Secret("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")) ==
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
  auto decoded = decode_base64(encode_xoauth2("u", Secret("t")));
  REQUIRE(decoded.ok());
  CHECK(*decoded == "user=u\x01" "auth=Bearer t\x01\x01");
}

TEST_CASE("XOAUTH2: the server's error challenge is read as one printable line", "[sasl][xoauth2]") {
  auto [challenge, expected] = GENERATE(table<std::string, std::optional<std::string>>({
      // Google's documented error challenge (its JSON ends with a newline, trimmed here).
      {"eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K",
       std::string(R"({"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"})")},
      {encode_base64("{\"a\":\"x\x07\xc3\xa9\"}"), std::string("{\"a\":\"x???\"}")},   // control, non-ASCII
      {encode_base64("  {}\r\n"), std::string("{}")},
      {encode_base64("not json"), std::nullopt},
      {encode_base64("{unterminated"), std::nullopt},
      {"", std::nullopt},
      {"!!!!", std::nullopt},
  }));
  CAPTURE(challenge);
  CHECK(decode_xoauth2_error(challenge) == expected);
}

TEST_CASE("XOAUTH2: a huge error challenge is cut to 512 bytes", "[sasl][xoauth2]") {
  const std::string json = "{\"detail\":\"" + std::string(2000, 'x') + "\"}";
  const auto shown = decode_xoauth2_error(encode_base64(json));
  REQUIRE(shown.has_value());
  CHECK(shown->size() == 512);
  CHECK(shown->front() == '{');
}
