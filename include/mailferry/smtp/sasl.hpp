// sasl.hpp: the bytes of SMTP AUTH (RFC 4954) — base64, and the PLAIN, LOGIN and XOAUTH2 messages,
// encoded for the upstream dialogue and decoded for the submission one.
// Never checks a password, never keeps one and never logs one: it only turns lines into values.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "mailferry/base/result.hpp"
#include "mailferry/base/secret.hpp"

namespace mailferry::smtp {

// The longest authzid, user name or password a SASL message may carry. RFC 4616 §2 requires at
// least 255 octets to be accepted; 512 is libxcrypt's CRYPT_MAX_PASSPHRASE_SIZE, the most crypt(3)
// will hash, so a longer password could never verify anyway.
inline constexpr std::size_t max_sasl_field = 512;

// RFC 4648 §4 base64, with padding.
std::string encode_base64(std::string_view bytes);
// Strict RFC 4648 §4 decoding: the length is a multiple of 4, padding only at the end (at most two
// '='), no whitespace, no characters outside the alphabet, and the unused bits before the padding
// are zero (§3.5), so every byte string has exactly one accepted encoding. SMTP clients all use
// canonical encoders; anything else is a broken or probing client and gets 501.
Result<std::string> decode_base64(std::string_view text);

// RFC 4616 PLAIN message: [authzid] NUL authcid NUL passwd.
struct Credentials {
  std::string authzid;   // usually empty; a non-empty one is the client asking to act as someone else
  std::string user;      // the authcid, never empty
  Secret password;       // never contains NUL (crypt(3) would silently cut it there)
};

// Decodes the base64 response to AUTH PLAIN. Refused: bad base64, fewer or more than two NULs,
// an empty user, any field longer than max_sasl_field.
Result<Credentials> decode_plain(std::string_view base64);
// base64("" NUL user NUL password): no authzid, as every client sends it.
std::string encode_plain(std::string_view user, const Secret& password);

// AUTH LOGIN (draft-murchison-sasl-login): the server's two 334 challenges, already base64.
std::string login_user_prompt();       // base64("Username:")
std::string login_password_prompt();   // base64("Password:")
// Decodes one LOGIN response line (the user name or the password). Refused: bad base64, a NUL,
// longer than max_sasl_field. An empty result is allowed here; the caller decides (an empty user
// name is a 501, an empty password simply fails verification).
Result<std::string> decode_login_response(std::string_view base64);

// Google's and Microsoft's SASL XOAUTH2 initial response:
// base64("user=" user ^A "auth=Bearer " token ^A ^A).
std::string encode_xoauth2(std::string_view user, const Secret& access_token);
// After a refused token the server sends "334 <base64 JSON>" (e.g. {"status":"401","schemes":
// "Bearer","scope":"https://mail.google.com/"}) and waits for an empty line before its 5xx. This
// returns that JSON as one printable line (control and non-ASCII bytes shown as '?', cut to 512
// bytes) for the failure message, or nullopt if the challenge is not base64 of a JSON object.
std::optional<std::string> decode_xoauth2_error(std::string_view base64_challenge);

}  // namespace mailferry::smtp
