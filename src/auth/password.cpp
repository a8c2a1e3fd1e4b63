// password.cpp: crypt(3) verification and hashing through libxcrypt's reentrant calls.
#include "mailferry/auth/password.hpp"

#include <crypt.h>
#include <string.h>      // explicit_bzero (glibc)
#include <sys/random.h>  // getrandom

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

namespace mailferry::auth {
namespace {

// crypt_data is about 32 KiB: too big for a worker thread's stack to hold casually, so it lives on
// the heap. The whole struct is zeroed on both ends: zero before first use is what crypt_rn asks
// for, and zero after so that password-derived state does not linger in freed memory.
struct CryptData {
  CryptData() : data(std::make_unique<crypt_data>()) {}   // value-initialised: all zero
  ~CryptData() { explicit_bzero(data.get(), sizeof(crypt_data)); }
  CryptData(const CryptData&) = delete;
  CryptData& operator=(const CryptData&) = delete;
  std::unique_ptr<crypt_data> data;
};

// libcrypt takes a C string; a std::string copy gives it the terminator and is wiped afterwards.
struct Phrase {
  explicit Phrase(std::string_view p) : text(p) {}
  ~Phrase() { explicit_bzero(text.data(), text.size()); }
  Phrase(const Phrase&) = delete;
  Phrase& operator=(const Phrase&) = delete;
  std::string text;
};

bool usable_phrase(std::string_view password) {
  // A NUL would end the C string early ("secret\0junk" would verify as "secret"), and libxcrypt
  // refuses phrases longer than CRYPT_MAX_PASSPHRASE_SIZE - 1 bytes.
  return password.find('\0') == std::string_view::npos && password.size() < CRYPT_MAX_PASSPHRASE_SIZE;
}

// Compares two strings in time that depends only on their lengths, so that the position of the
// first differing byte of the hash is not observable. (The lengths are not secret: they follow
// from the method written in the stored hash.)
bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

bool locked_or_empty(std::string_view hash) {
  return hash.empty() || hash.front() == '*' || hash.front() == '!';
}

}  // namespace

bool verify_password(std::string_view password, const std::string& crypt_hash) {
  if (locked_or_empty(crypt_hash) || !usable_phrase(password)) return false;
  CryptData cd;
  const Phrase phrase(password);
  // crypt_rn returns nullptr on any failure (unknown method, malformed hash) instead of the "*0"
  // failure token crypt_r hands back, so a failure can never be mistaken for a hash.
  const char* out = crypt_rn(phrase.text.c_str(), crypt_hash.c_str(), cd.data.get(), sizeof(crypt_data));
  if (out == nullptr) return false;
  return constant_time_equal(out, crypt_hash);
}

Result<std::string> hash_password(std::string_view password, std::string_view prefix) {
  if (password.empty()) return Error{"empty password"};
  if (password.find('\0') != std::string_view::npos) return Error{"the password contains a NUL byte"};
  if (password.size() >= CRYPT_MAX_PASSPHRASE_SIZE) {
    return Error{"the password is longer than " + std::to_string(CRYPT_MAX_PASSPHRASE_SIZE - 1) + " bytes"};
  }
  // 16 random bytes is what the strongest methods ask for (yescrypt and bcrypt refuse fewer); the
  // others use what they need of them.
  std::array<unsigned char, 16> random{};
  std::size_t got = 0;
  while (got < random.size()) {
    const ssize_t n = getrandom(random.data() + got, random.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{std::string("getrandom: ") + std::strerror(errno), errno};
    }
    got += static_cast<std::size_t>(n);
  }
  const std::string prefix_str(prefix);
  std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> setting{};
  errno = 0;
  // count 0: the method's default cost, which libxcrypt keeps current.
  const char* salt = crypt_gensalt_rn(prefix_str.c_str(), 0, reinterpret_cast<const char*>(random.data()),
                                      static_cast<int>(random.size()), setting.data(), static_cast<int>(setting.size()));
  explicit_bzero(random.data(), random.size());
  if (salt == nullptr) return Error{"unknown password hashing method \"" + prefix_str + "\""};
  if (crypt_checksalt(salt) != CRYPT_SALT_OK) {
    return Error{"password hashing method \"" + prefix_str + "\" is legacy and weak; use \"$y$\""};
  }
  CryptData cd;
  const Phrase phrase(password);
  const char* out = crypt_rn(phrase.text.c_str(), salt, cd.data.get(), sizeof(crypt_data));
  if (out == nullptr) return Error{std::string("crypt: ") + std::strerror(errno), errno};
  return std::string(out);
}

bool hash_is_legacy(const std::string& crypt_hash) {
  if (crypt_hash.empty()) return true;
  if (crypt_hash.front() == '*' || crypt_hash.front() == '!') return false;   // deliberately locked
  return crypt_checksalt(crypt_hash.c_str()) != CRYPT_SALT_OK;
}

}  // namespace mailferry::auth
