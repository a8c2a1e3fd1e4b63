// units.hpp: the SPEC's duration, size and rate strings ("30s", "25MiB", "100/h") to numbers and back.
// Pure and location-free: an error says what is wrong with the text and what was expected; the caller
// (load_config, the environment overlay) prefixes the file, line, column or variable name.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "mailferry/base/result.hpp"

namespace mailferry::config {

// Digits then exactly one unit: "500ms", "30s", "10m", "1h", "5d". No sign, no spaces, no fractions,
// no compound forms ("1h30m"); "0s" is a valid duration (fields that need more than zero say so).
// One line for a bad value: `"text" why (expected …)`; shared by every parser of config values.
Error value_error(std::string_view text, std::string_view why, std::string_view expected);

Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// The largest unit that divides evenly, so parse_duration(format_duration(d)) == d: 90000ms → "90s",
// 600000ms → "10m", 0 → "0s".
std::string format_duration(std::chrono::milliseconds d);

// Digits then an optional unit: bytes ("100", "100B"), binary ("512KiB", "25MiB", "1GiB", "1TiB") or
// decimal ("500KB"/"500kB", "25MB", "1GB", "1TB").
Result<std::uint64_t> parse_size(std::string_view text);

// Binary unit if one divides evenly ("25MiB"), else a decimal one ("25MB"), else plain bytes ("1000001").
std::string format_size(std::uint64_t bytes);

// "COUNT/PERIOD": a positive count, then a unit ("s", "sec", "m", "min", "h", "hour", "d", "day") or
// a whole-second duration ("10m"): "100/h", "20/min", "5/s", "1000/d", "50/10m".
// An empty string is an error here; whether empty means "unlimited" is the field's decision.
Result<std::pair<std::uint32_t, std::chrono::seconds>> parse_rate(std::string_view text);

// "100/h", "20/min", "5/s", "1000/d", else "50/10m"; parse_rate reads every output back.
std::string format_rate(std::uint32_t count, std::chrono::seconds period);

}  // namespace mailferry::config
