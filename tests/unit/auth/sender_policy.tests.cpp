// sender_policy.tests.cpp: allowed_senders matching ("a@example.com", "@example.org", empty = any).
#include "mailferry/auth/sender_policy.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using mailferry::auth::sender_allowed;

TEST_CASE("sender policy: the SPEC's example list", "[auth][sender_policy]") {
  const std::vector<std::string> allowed = {"wordpress@example.com", "@example.org"};
  auto [sender, ok] = GENERATE(table<std::string, bool>({
      {"wordpress@example.com", true},
      {"<wordpress@example.com>", true},      // with the path's brackets
      {"WordPress@Example.COM", true},        // case-insensitive, local part included (see header)
      {"wordpress@example.com.evil.net", false},
      {"xwordpress@example.com", false},
      {"wordpress@sub.example.com", false},
      {"other@example.com", false},
      {"anyone@example.org", true},
      {"Anyone@EXAMPLE.ORG", true},
      {"\"quoted@local\"@example.org", true},   // the last '@' splits
      {"anyone@sub.example.org", false},        // not subdomains
      {"anyone@example.org.evil.net", false},
      {"anyone@notexample.org", false},
      {"@example.org", false},                  // an empty local part is no mailbox
      {"example.org", false},
      {"", false},                              // the null sender, refused with a non-empty list
      {"<>", false},
      {"<", false},
  }));
  CAPTURE(sender);
  CHECK(sender_allowed(allowed, sender) == ok);
}

TEST_CASE("sender policy: an empty list allows any sender, the null sender too", "[auth][sender_policy]") {
  const std::string sender = GENERATE(as<std::string>{}, "a@example.com", "", "<>", "x@y");
  CAPTURE(sender);
  CHECK(sender_allowed({}, sender));
}

TEST_CASE("sender policy: odd entries match nothing by accident", "[auth][sender_policy]") {
  auto [entry, sender, ok] = GENERATE(table<std::string, std::string, bool>({
      {"", "", false},                 // an empty entry is not "any", and not the null sender
      {"", "a@example.com", false},
      {"@", "a@", false},
      {"@", "a@example.com", false},
      {"a@example.com", "a@example.com", true},
      {"\xc3\x89lise@example.com", "\xc3\x89lise@example.com", true},   // UTF-8 bytes match exactly
      {"\xc3\x89lise@example.com", "\xc3\xa9lise@example.com", false},  // no Unicode case folding
  }));
  CAPTURE(entry, sender);
  CHECK(sender_allowed({entry}, sender) == ok);
}
