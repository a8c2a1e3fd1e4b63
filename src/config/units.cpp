// units.cpp: duration, size and rate strings. Hand-written digit loops rather than std::stoull, which
// accepts signs, spaces and "0x" and reports overflow by exception.
#include "mailferry/config/units.hpp"

#include <array>
#include <limits>

namespace mailferry::config {
namespace {

constexpr std::string_view duration_expected =
    R"((expected digits then ms, s, m, h or d, like "500ms", "30s", "10m", "1h", "5d"))";
constexpr std::string_view size_expected =
    R"((expected digits then an optional unit B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, like "25MiB"))";
constexpr std::string_view rate_expected =
    R"((expected COUNT/PERIOD with a period of s, min, h or d, like "100/h" or "20/min"))";

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// The leading digits of a text as a number; `length` 0 means there were none.
struct Digits {
  std::uint64_t value = 0;
  std::size_t length = 0;
  bool overflow = false;
};

Digits leading_digits(std::string_view text) {
  Digits d;
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  while (d.length < text.size() && text[d.length] >= '0' && text[d.length] <= '9') {
    const auto digit = static_cast<std::uint64_t>(text[d.length] - '0');
    if (d.value > (max - digit) / 10) d.overflow = true;
    if (!d.overflow) d.value = d.value * 10 + digit;
    ++d.length;
  }
  return d;
}


// Parses "<digits><unit>" against a table of units; shared by durations and sizes.
template <std::size_t N>
Result<std::uint64_t> parse_scaled(std::string_view text, const std::array<Unit, N>& units,
                                   bool unit_required, std::uint64_t max, std::string_view expected) {
  if (text.empty()) return value_error(text, "is empty", expected);
  if (text.front() == '-') return value_error(text, "is negative", expected);
  const Digits d = leading_digits(text);
  if (d.length == 0) return value_error(text, "does not start with digits", expected);
  const std::string_view unit = text.substr(d.length);
  if (unit.empty() && unit_required) return value_error(text, "has no unit", expected);
  for (const Unit& u : units) {
    if (u.name != unit) continue;
    if (d.overflow || d.value > max / u.factor) return value_error(text, "is too large", expected);
    return d.value * u.factor;
  }
  std::string why = "has an unknown unit \"";
  why += unit;
  why += '"';
  return value_error(text, why, expected);
}

constexpr std::array<Unit, 5> duration_units{{
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}}};

constexpr std::array<Unit, 11> size_units{{{"", 1},
                                           {"B", 1},
                                           {"KiB", 1ull << 10},
                                           {"MiB", 1ull << 20},
                                           {"GiB", 1ull << 30},
                                           {"TiB", 1ull << 40},
                                           {"KB", 1000},
                                           {"kB", 1000},
                                           {"MB", 1000 * 1000},
                                           {"GB", 1000 * 1000 * 1000},
                                           {"TB", 1000ull * 1000 * 1000 * 1000}}};

}  // namespace

// `"text" why (expected …)`: how every bad config value is reported.
Error value_error(std::string_view text, std::string_view why, std::string_view expected) {
  std::string m = "\"";
  m += text;
  m += "\" ";
  m += why;
  m += ' ';
  m += expected;
  return Error{m};
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  // The limit keeps every later `now + duration` inside int64 nanoseconds for centuries.
  constexpr std::uint64_t max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) /
                                1'000'000;
  auto r = parse_scaled(text, duration_units, true, max, duration_expected);
  if (!r) return r.error();
  return std::chrono::milliseconds{static_cast<std::int64_t>(*r)};
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count());
  if (ms == 0) return "0s";
  for (auto it = duration_units.rbegin(); it != duration_units.rend(); ++it) {
    if (ms % it->factor == 0) return std::to_string(ms / it->factor) + std::string(it->name);
  }
  return std::to_string(ms) + "ms";
}

Result<std::uint64_t> parse_size(std::string_view text) {
  return parse_scaled(text, size_units, false, std::numeric_limits<std::uint64_t>::max(),
                      size_expected);
}

std::string format_size(std::uint64_t bytes) {
  if (bytes == 0) return "0";
  constexpr std::array<Unit, 8> order{{{"TiB", 1ull << 40},
                                       {"GiB", 1ull << 30},
                                       {"MiB", 1ull << 20},
                                       {"KiB", 1ull << 10},
                                       {"TB", 1000ull * 1000 * 1000 * 1000},
                                       {"GB", 1000 * 1000 * 1000},
                                       {"MB", 1000 * 1000},
                                       {"KB", 1000}}};
  for (const Unit& u : order) {
    if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + std::string(u.name);
  }
  return std::to_string(bytes);
}

Result<std::pair<std::uint32_t, std::chrono::seconds>> parse_rate(std::string_view text) {
  if (text.empty()) return value_error(text, "is empty", rate_expected);
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return value_error(text, "has no \"/PERIOD\"", rate_expected);
  const std::string_view count_text = text.substr(0, slash);
  const std::string_view period_text = text.substr(slash + 1);
  if (!count_text.empty() && count_text.front() == '-') {
    return value_error(text, "has a negative count", rate_expected);
  }
  const Digits d = leading_digits(count_text);
  if (d.length == 0 || d.length != count_text.size()) {
    return value_error(text, "does not start with a whole number", rate_expected);
  }
  if (d.overflow || d.value > std::numeric_limits<std::uint32_t>::max()) {
    return value_error(text, "has too large a count", rate_expected);
  }
  if (d.value == 0) return value_error(text, "allows nothing at all", rate_expected);

  constexpr std::array<std::pair<std::string_view, std::int64_t>, 10> periods{{{"s", 1},
                                                                               {"sec", 1},
                                                                               {"second", 1},
                                                                               {"m", 60},
                                                                               {"min", 60},
                                                                               {"minute", 60},
                                                                               {"h", 3600},
                                                                               {"hour", 3600},
                                                                               {"d", 86400},
                                                                               {"day", 86400}}};
  const auto count = static_cast<std::uint32_t>(d.value);
  for (const auto& [name, seconds] : periods) {
    if (name == period_text) return std::pair{count, std::chrono::seconds{seconds}};
  }
  // A period with its own number ("50/10m") is a duration of whole seconds.
  if (!period_text.empty() && period_text.front() >= '0' && period_text.front() <= '9') {
    auto period = parse_duration(period_text);
    if (!period || period->count() == 0 || period->count() % 1000 != 0) {
      return value_error(text, "has a period that is not a whole number of seconds", rate_expected);
    }
    return std::pair{count, std::chrono::duration_cast<std::chrono::seconds>(*period)};
  }
  std::string why = "has an unknown period \"";
  why += period_text;
  why += '"';
  return value_error(text, why, rate_expected);
}

std::string format_rate(std::uint32_t count, std::chrono::seconds period) {
  std::string out = std::to_string(count) + "/";
  switch (period.count()) {
    case 1: return out + "s";
    case 60: return out + "min";
    case 3600: return out + "h";
    case 86400: return out + "d";
  }
  return out + format_duration(period);
}

}  // namespace mailferry::config
