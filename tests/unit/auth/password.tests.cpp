// password.tests.cpp: crypt(3) verification and hashing (yescrypt, bcrypt, sha512-crypt).
#include "mailferry/auth/password.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

using mailferry::auth::hash_is_legacy;
using mailferry::auth::hash_password;
using mailferry::auth::verify_password;
using namespace std::string_literals;

namespace {

// Fixed vector, made outside mailferry: `openssl passwd -6 -salt saltsalt password`.
const std::string openssl_sha512 =
    "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";

}  // namespace

TEST_CASE("password: a fixed sha512-crypt vector from openssl verifies", "[auth][password]") {
  CHECK(verify_password("password", openssl_sha512));
  CHECK_FALSE(verify_password("Password", openssl_sha512));
  CHECK_FALSE(verify_password("password ", openssl_sha512));
  CHECK_FALSE(verify_password("", openssl_sha512));
}

TEST_CASE("password: hashes made per method verify the right password only", "[auth][password]") {
  const std::string prefix = GENERATE(as<std::string>{}, "$y$", "$2b$", "$6$");
  CAPTURE(prefix);
  const std::string password = "correct horse battery staple";
  auto hash = hash_password(password, prefix);
  REQUIRE(hash.ok());
  CHECK(hash->rfind(prefix, 0) == 0);
  CHECK_FALSE(hash_is_legacy(*hash));

  auto [candidate, ok] = GENERATE_COPY(table<std::string, bool>({
      {password, true},
      {"correct horse battery stapl", false},
      {"Correct horse battery staple", false},
      {"", false},
      {password + "\0"s, false},                  // a NUL never just ends the password
      {password + "\0junk"s, false},
  }));
  CAPTURE(candidate);
  CHECK(verify_password(candidate, *hash) == ok);
}

TEST_CASE("password: two hashes of one password differ (fresh salt)", "[auth][password]") {
  auto a = hash_password("same", "$6$");
  auto b = hash_password("same", "$6$");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
  CHECK(verify_password("same", *a));
  CHECK(verify_password("same", *b));
}

TEST_CASE("password: the default method is yescrypt", "[auth][password]") {
  auto hash = hash_password("pw");
  REQUIRE(hash.ok());
  CHECK(hash->rfind("$y$", 0) == 0);
}

TEST_CASE("password: locked, empty and unreadable hashes never match", "[auth][password]") {
  auto [hash, why] = GENERATE_COPY(table<std::string, std::string_view>({
      {"", "empty"},
      {"*", "locked '*'"},
      {"!", "locked '!'"},
      {"!" + openssl_sha512, "'!' in front of a valid hash (usermod -L)"},
      {"*" + openssl_sha512, "'*' in front of a valid hash"},
      {"$6$saltsalt$", "truncated"},
      {"$nope$salt$hash", "unknown method"},
      {"garbage", "not a hash"},
      {openssl_sha512.substr(0, openssl_sha512.size() - 1) + "0", "one character changed"},
  }));
  CAPTURE(why);
  CHECK_FALSE(verify_password("password", hash));
  CHECK_FALSE(verify_password("", hash));
}

TEST_CASE("password: a password longer than libcrypt accepts never matches", "[auth][password]") {
  const std::string longest(511, 'p');
  auto hash = hash_password(longest, "$6$");
  REQUIRE(hash.ok());
  CHECK(verify_password(longest, *hash));
  CHECK_FALSE(verify_password(longest + "p", *hash));
}

TEST_CASE("password: hash_password refuses what it cannot hash well", "[auth][password]") {
  auto [password, prefix, why] = GENERATE(table<std::string, std::string, std::string_view>({
      {"", "$y$", "empty password"},
      {"a\0b"s, "$y$", "NUL in the password"},
      {std::string(512, 'p'), "$y$", "longer than 511 bytes"},
      {"pw", "$nope$", "unknown method"},
      {"pw", "$1$", "MD5-crypt is legacy"},
      {"pw", "", "DES is legacy"},
  }));
  CAPTURE(why);
  auto hash = hash_password(password, prefix);
  CHECK_FALSE(hash.ok());
  if (!hash.ok()) CHECK_FALSE(hash.error().message.empty());
}

TEST_CASE("password: legacy methods are recognised for check-config", "[auth][password]") {
  auto [hash, legacy] = GENERATE_COPY(table<std::string, bool>({
      {openssl_sha512, false},
      {"$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", true},   // openssl passwd -1 -salt saltsalt password
      {"saHW9GdxihkGQ", true},                        // DES
      {"", true},
      {"!", false},                                   // locked on purpose, not weak
      {"*", false},
  }));
  CAPTURE(hash);
  CHECK(hash_is_legacy(hash) == legacy);
}

TEST_CASE("password: a legacy hash still verifies (check-config warns, login works)", "[auth][password]") {
  CHECK(verify_password("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"));
  CHECK_FALSE(verify_password("passwor", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"));
}

TEST_CASE("password: verification is safe from several threads at once", "[auth][password]") {
  auto hash = hash_password("threads", "$6$");
  REQUIRE(hash.ok());
  std::vector<int> results(8, -1);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = verify_password(i % 2 ? "threads" : "wrong", *hash) ? 1 : 0; });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < results.size(); ++i) CHECK(results[i] == (i % 2 ? 1 : 0));
}
