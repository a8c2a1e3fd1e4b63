// fuzz_config.cpp: the config loader (config::parse_config) fed arbitrary TOML text.
// Invariants: an error is one line that names the file; a config that loads passes
// validate_config, and what check-config prints for it (render_config) loads back to the same
// Config once the masked secrets are replaced by stand-ins.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "fuzz_support.hpp"
#include "mailferry/config/load_config.hpp"
#include "mailferry/config/render_config.hpp"
#include "../support/config_round_trip.hpp"

using namespace mailferry;
using namespace mailferry::config;
using mailferry::test::unmasked;
using mailferry::test::with_stand_ins;

namespace {

const std::string source = "fuzz.toml";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = parse_config(text, source);
  if (!parsed) {
    const std::string& msg = parsed.error().message;
    FUZZ_CHECK(msg.rfind(source, 0) == 0, "config error does not start with the file name");
    FUZZ_CHECK(msg.find('\n') == std::string::npos, "config error is not one line");
    return 0;
  }
  FUZZ_CHECK(validate_config(*parsed).ok(), "a loaded config fails validate_config");
  const std::string rendered = render_config(*parsed);
  const auto reloaded = parse_config(unmasked(rendered), source);
  if (!reloaded) {
    std::fprintf(stderr, "render_config output:\n%s\nreload error: %s\n", rendered.c_str(),
                 reloaded.error().message.c_str());
  }
  FUZZ_CHECK(reloaded.ok(), "check-config output does not load back");
  FUZZ_CHECK(*reloaded == with_stand_ins(*parsed), "check-config output loads back to a different config");
  return 0;
}
