// sasl.cpp: base64 and the SASL PLAIN / LOGIN / XOAUTH2 messages of SMTP AUTH.
#include "mailferry/smtp/sasl.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string.h>   // explicit_bzero (glibc)

namespace mailferry::smtp {
namespace {

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::int8_t invalid = -1;

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = invalid;
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}
constexpr auto decode_table = make_decode_table();

// Intermediate buffers that held a password are zeroed before they are freed, so the secret does
// not linger in freed heap memory (a core dump, a later allocation).
void wipe(std::string& s) {
  explicit_bzero(s.data(), s.size());
  s.clear();
}

Error sasl_error(std::string message) { return Error{std::move(message)}; }

}  // namespace

std::string encode_base64(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16 |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8 |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += alphabet[n >> 6 & 63];
    out += alphabet[n & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2) n |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += rest == 2 ? alphabet[n >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return sasl_error("base64: length is not a multiple of 4");
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const std::size_t data_chars = last ? 4 - padding : 4;
    std::uint32_t n = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      if (k >= data_chars) {   // a padding position, already known to hold '='
        n <<= 6;
        continue;
      }
      const std::int8_t v = decode_table[static_cast<unsigned char>(text[i + k])];
      if (v == invalid) {
        wipe(out);
        return sasl_error(text[i + k] == '=' ? "base64: '=' before the end" : "base64: invalid character");
      }
      n = n << 6 | static_cast<std::uint32_t>(v);
    }
    // RFC 4648 §3.5: the bits below the last full byte must be zero, or two inputs decode alike.
    if ((padding == 1 && last && (n & 0xff) != 0) || (padding == 2 && last && (n & 0xffff) != 0)) {
      wipe(out);
      return sasl_error("base64: non-zero bits before the padding");
    }
    out += static_cast<char>(n >> 16 & 0xff);
    if (data_chars > 2) out += static_cast<char>(n >> 8 & 0xff);
    if (data_chars > 3) out += static_cast<char>(n & 0xff);
  }
  return out;
}

Result<Credentials> decode_plain(std::string_view base64) {
  auto decoded = decode_base64(base64);
  if (!decoded) return decoded.error();
  std::string& message = *decoded;
  const std::size_t nul1 = message.find('\0');
  const std::size_t nul2 = nul1 == std::string::npos ? std::string::npos : message.find('\0', nul1 + 1);
  if (nul2 == std::string::npos) {
    wipe(message);
    return sasl_error("AUTH PLAIN: expected authzid NUL user NUL password");
  }
  if (message.find('\0', nul2 + 1) != std::string::npos) {
    wipe(message);
    return sasl_error("AUTH PLAIN: NUL inside the password");
  }
  const std::size_t authzid_len = nul1;
  const std::size_t user_len = nul2 - nul1 - 1;
  const std::size_t password_len = message.size() - nul2 - 1;
  std::string error;
  if (user_len == 0) error = "AUTH PLAIN: empty user name";
  if (authzid_len > max_sasl_field || user_len > max_sasl_field || password_len > max_sasl_field) {
    error = "AUTH PLAIN: field too long";
  }
  if (!error.empty()) {
    wipe(message);
    return sasl_error(std::move(error));
  }
  Credentials c;
  c.authzid = message.substr(0, authzid_len);
  c.user = message.substr(nul1 + 1, user_len);
  c.password = Secret(message.substr(nul2 + 1));
  wipe(message);
  return c;
}

std::string encode_plain(std::string_view user, const Secret& password) {
  std::string message;
  message.reserve(user.size() + password.reveal().size() + 2);
  message += '\0';
  message += user;
  message += '\0';
  message += password.reveal();
  std::string encoded = encode_base64(message);
  wipe(message);
  return encoded;
}

std::string login_user_prompt() { return encode_base64("Username:"); }
std::string login_password_prompt() { return encode_base64("Password:"); }

Result<std::string> decode_login_response(std::string_view base64) {
  auto decoded = decode_base64(base64);
  if (!decoded) return decoded.error();
  std::string error;
  if (decoded->find('\0') != std::string::npos) error = "AUTH LOGIN: NUL in the response";
  if (decoded->size() > max_sasl_field) error = "AUTH LOGIN: response too long";
  if (!error.empty()) {
    wipe(*decoded);
    return sasl_error(std::move(error));
  }
  return decoded;
}

std::string encode_xoauth2(std::string_view user, const Secret& access_token) {
  std::string message;
  message.reserve(user.size() + access_token.reveal().size() + 20);
  message += "user=";
  message += user;
  message += "\x01" "auth=Bearer ";
  message += access_token.reveal();
  message += "\x01\x01";
  std::string encoded = encode_base64(message);
  wipe(message);
  return encoded;
}

std::optional<std::string> decode_xoauth2_error(std::string_view base64_challenge) {
  auto decoded = decode_base64(base64_challenge);
  if (!decoded) return std::nullopt;
  std::string_view json = *decoded;
  // Trim JSON whitespace; what is left must at least look like an object.
  while (!json.empty() && (json.front() == ' ' || json.front() == '\t' || json.front() == '\r' || json.front() == '\n')) {
    json.remove_prefix(1);
  }
  while (!json.empty() && (json.back() == ' ' || json.back() == '\t' || json.back() == '\r' || json.back() == '\n')) {
    json.remove_suffix(1);
  }
  if (json.size() < 2 || json.front() != '{' || json.back() != '}') return std::nullopt;
  // It ends up in a log line and a bounce: one line, printable ASCII, bounded.
  constexpr std::size_t max_shown = 512;
  std::string out;
  out.reserve(std::min(json.size(), max_shown));
  for (const char ch : json.substr(0, max_shown)) {
    const auto c = static_cast<unsigned char>(ch);
    out += c >= 0x20 && c < 0x7f ? ch : '?';
  }
  return out;
}

}  // namespace mailferry::smtp
