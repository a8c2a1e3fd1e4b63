// fuzz_support.hpp: what every fuzz target shares — a reader for control bytes taken from the
// input, chunking derived from the input, and a check that aborts with a message (so a broken
// invariant is a crash libFuzzer keeps, and a failing replay test, in release builds too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace mailferry::fuzz {

// Not assert(): it must hold with NDEBUG as well.
#define FUZZ_CHECK(cond, what)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", __FILE__, __LINE__, what, \
                   #cond);                                                                  \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

// Reads control values from the front of the input; past its end every value is 0, so short
// inputs still run (with the defaults) instead of being thrown away.
class Control {
 public:
  Control(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  bool bit() { return (byte() & 1) != 0; }
  std::size_t used() const { return pos_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Splits `bytes` into chunks whose sizes come from a small generator seeded by `seed` (itself an
// input byte): seed 0 feeds everything at once, other seeds give chunks from 1 byte upwards, so
// the fuzzer explores every split of the same bytes by mutating one byte.
class Chunker {
 public:
  Chunker(std::string_view bytes, std::uint8_t seed) : rest_(bytes), state_(seed * 2654435761u + 1), whole_(seed == 0) {}

  bool done() const { return rest_.empty(); }
  std::string_view next() {
    std::size_t n = rest_.size();
    if (!whole_) {
      state_ ^= state_ << 13;
      state_ ^= state_ >> 17;
      state_ ^= state_ << 5;
      // Mostly short chunks (split commands, split CRLF), sometimes long ones (pipelined groups).
      const std::uint32_t r = state_ % 64;
      n = r < 48 ? 1 + r % 8 : 1 + r * 16;
    }
    if (n > rest_.size()) n = rest_.size();
    const std::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return out;
  }
  // A decision for the caller (answer now or later, …), from the same generator.
  std::uint32_t choice() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }

 private:
  std::string_view rest_;
  std::uint32_t state_;
  bool whole_;
};

inline std::span<const char> as_span(std::string_view s) { return {s.data(), s.size()}; }

// Every CR is followed by LF and every LF preceded by CR: what no smuggling trick may break.
inline bool crlf_only(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] != '\n')) return false;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  }
  return true;
}

}  // namespace mailferry::fuzz
