// ascii.hpp: ASCII-only case handling for protocol words, header names and addresses.
// Deliberately not locale-aware: SMTP verbs and header field names are ASCII, and an SMTPUTF8
// address's non-ASCII bytes must compare exactly (Unicode case folding has no place in an access
// check).
#pragma once

#include <string_view>

namespace mailferry {

constexpr char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

constexpr bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace mailferry
