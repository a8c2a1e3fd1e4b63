// queue_id.cpp: QueueId as 14 characters of Crockford base32.
//
// Layout: 11 characters (55 bits) of microseconds since the epoch, then 3 characters (15 bits)
// of entropy. 2^55 us is about 1140 years, so the time part never wraps in practice, and because
// the alphabet is in ASCII order, comparing ids as strings compares arrival times first.
// 15 bits of entropy are enough because ids collide only within the same microsecond, and the
// spool retries with new entropy when the name is taken (mkdir says EEXIST).
#include "mailferry/spool/queue_id.hpp"

#include <array>
#include <chrono>

namespace mailferry::spool {

namespace {

constexpr std::string_view alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::size_t time_chars = 11;
constexpr std::size_t entropy_chars = 3;
constexpr std::size_t id_chars = time_chars + entropy_chars;
constexpr std::uint64_t time_mask = (std::uint64_t{1} << (5 * time_chars)) - 1;

void put_base32(std::string& out, std::uint64_t value, std::size_t chars) {
  for (std::size_t i = chars; i-- > 0;) out.push_back(alphabet[(value >> (5 * i)) & 31U]);
}

bool is_id_char(char c) { return alphabet.find(c) != std::string_view::npos; }

}  // namespace

QueueId QueueId::make(WallTime now, std::uint64_t entropy) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  // A clock before 1970 is a broken clock; clamp rather than produce an id that sorts last.
  const std::uint64_t t = us < 0 ? 0 : static_cast<std::uint64_t>(us) & time_mask;
  std::string text;
  text.reserve(id_chars);
  put_base32(text, t, time_chars);
  put_base32(text, entropy, entropy_chars);
  return QueueId(std::move(text));
}

std::optional<QueueId> QueueId::parse(std::string_view text) {
  if (text.size() != id_chars) return std::nullopt;
  for (char c : text) {
    if (!is_id_char(c)) return std::nullopt;
  }
  // Every 14-character string over the alphabet is something make() can produce: 55 bits of
  // time and 15 bits of entropy use all 70 bits.
  return QueueId(std::string(text));
}

}  // namespace mailferry::spool
