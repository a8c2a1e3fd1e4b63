// config_round_trip.hpp: what the render_config tests and the config fuzz target share. Masked
// secrets do not load (on purpose), so a round trip through check-config's output swaps stand-ins
// in for the masks and expects the original Config with the same stand-ins.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "mailferry/config/config.hpp"
#include "mailferry/config/render_config.hpp"

namespace mailferry::test {

inline constexpr std::string_view stand_in_hash = "$stand-in$hash";
inline constexpr std::string_view stand_in_password = "stand-in password";

// render_config's output with every masked secret replaced by its stand-in.
inline std::string unmasked(std::string text) {
  const std::string mask = "\"" + std::string(config::masked_secret) + "\"";
  for (auto [key, value] : {std::pair{std::string("password_hash = "), stand_in_hash},
                            std::pair{std::string("password = "), stand_in_password}}) {
    for (auto at = text.find(key + mask); at != std::string::npos; at = text.find(key + mask, at)) {
      text.replace(at + key.size(), mask.size(), "\"" + std::string(value) + "\"");
    }
  }
  return text;
}

// `c` with the same stand-ins where it has secrets.
inline config::Config with_stand_ins(config::Config c) {
  if (!c.upstream.password.empty()) c.upstream.password = Secret(std::string(stand_in_password));
  for (config::User& u : c.users) u.password_hash = std::string(stand_in_hash);
  return c;
}

}  // namespace mailferry::test
