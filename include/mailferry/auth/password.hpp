// password.hpp: checking a password against a crypt(3) hash from [[user]] password_hash, and making
// such a hash for `mailferry passwd`. libxcrypt does the hashing (yescrypt $y$, bcrypt $2b$,
// sha512-crypt $6$, …).
// Never reads a terminal or a file and never logs: the password comes in as bytes and leaves as a hash.
//
// Both functions are slow by design (yescrypt at libxcrypt's default cost takes tens of
// milliseconds of CPU) and thread-safe: each call uses its own heap-allocated `struct crypt_data`
// with crypt_rn, and no global state. The daemon runs verify_password on a worker thread, never on
// the I/O loop.
#pragma once

#include <string>
#include <string_view>

#include "mailferry/base/result.hpp"

namespace mailferry::auth {

// True when `password` hashes to `crypt_hash`. Never true for an empty hash, a locked one (starting
// with '*' or '!', as in /etc/shadow), a hash libcrypt cannot read, or a password containing NUL or
// longer than libcrypt accepts (512 bytes). The final comparison takes the same time wherever the
// strings differ.
bool verify_password(std::string_view password, const std::string& crypt_hash);

// A new crypt(3) hash of `password` with a fresh random salt (getrandom) at libcrypt's default cost
// for the method named by `prefix` ("$y$" yescrypt, "$gy$", "$7$", "$2b$" bcrypt, "$6$", "$5$").
// Errors: an empty password, one containing NUL or longer than 512 bytes, a method libcrypt does not
// know, a legacy method (DES, MD5, SHA-1: libxcrypt's crypt_checksalt calls them legacy), no
// randomness available.
Result<std::string> hash_password(std::string_view password, std::string_view prefix = "$y$");

// True when the hash uses a method libxcrypt considers legacy (DES, "$1$" MD5, "$sha1"…) or one it
// cannot read at all (including an empty hash): check-config can warn about such [[user]] entries.
// A locked hash ('*' or '!') is deliberate and reported false.
bool hash_is_legacy(const std::string& crypt_hash);

}  // namespace mailferry::auth
