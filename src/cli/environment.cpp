// environment.cpp: see environment.hpp.
#include "cli/environment.hpp"

#include <unistd.h>

#include <string_view>

namespace mailferry::cli {

config::Environment process_environment() {
  config::Environment env;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string_view text = *entry;
    const auto eq = text.find('=');
    // Only MAILFERRY_* entries matter there; the rest stay out of it.
    if (eq == std::string_view::npos || !text.starts_with("MAILFERRY_")) continue;
    env.emplace_back(text.substr(0, eq), text.substr(eq + 1));
  }
  return env;
}

}  // namespace mailferry::cli
