// queue_id.tests.cpp: QueueId make/parse round trip, ordering by time, strict parsing.
#include "mailferry/spool/queue_id.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

using mailferry::WallTime;
using mailferry::spool::QueueId;
using namespace std::chrono_literals;

namespace {

WallTime at_us(long long us) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::microseconds(us)));
}

}  // namespace

TEST_CASE("queue id: make and parse round trip", "[spool][queue_id]") {
  // Up to the last microsecond WallTime (nanoseconds in 64 bits, year 2262) can hold.
  const WallTime now = GENERATE(at_us(0), at_us(1), at_us(1700000000123456), WallTime::max());
  const auto entropy = GENERATE(0ULL, 1ULL, 0x7fffULL, 0xffffffffffffffffULL, 0x123456789abcdefULL);
  const QueueId id = QueueId::make(now, entropy);
  CAPTURE(now.time_since_epoch().count(), entropy, id.str());
  CHECK(id.str().size() == 14);
  CHECK(id.str().find_first_not_of("0123456789ABCDEFGHJKMNPQRSTVWXYZ") == std::string::npos);
  const auto parsed = QueueId::parse(id.str());
  REQUIRE(parsed.has_value());
  CHECK(*parsed == id);
}

TEST_CASE("queue id: different entropy in the same microsecond gives different ids", "[spool][queue_id]") {
  const WallTime now = at_us(1700000000000000);
  CHECK(QueueId::make(now, 1) != QueueId::make(now, 2));
  CHECK(QueueId::make(now, 1) == QueueId::make(now, 1));
}

TEST_CASE("queue id: ids sort by time whatever their entropy", "[spool][queue_id]") {
  std::vector<QueueId> ids;
  std::vector<long long> times = {1700000000000000, 1700000000000001, 1700000000999999, 1700000001000000,
                                  1800000000000000, 2000000000000000, 9000000000000000};
  for (std::size_t i = 0; i < times.size(); ++i) {
    // Entropy chosen to run against time order, so only the time part can explain the result.
    ids.push_back(QueueId::make(at_us(times[i]), 0x7fff - i));
  }
  std::vector<QueueId> shuffled(ids.rbegin(), ids.rend());
  std::sort(shuffled.begin(), shuffled.end());
  CHECK(shuffled == ids);
  // And as plain strings, which is how `ls` and directory listings see them.
  for (std::size_t i = 1; i < ids.size(); ++i) CHECK(ids[i - 1].str() < ids[i].str());
}

TEST_CASE("queue id: a clock before 1970 is clamped, not wrapped", "[spool][queue_id]") {
  const QueueId before = QueueId::make(at_us(-5), 0);
  CHECK(QueueId::make(WallTime::min(), 0) == before);
  const QueueId epoch = QueueId::make(at_us(0), 0);
  CHECK(before == epoch);
  CHECK(before < QueueId::make(at_us(1), 0));
}

TEST_CASE("queue id: parse accepts only what make produces", "[spool][queue_id]") {
  const std::string good = QueueId::make(at_us(1700000000123456), 42).str();
  auto [text, ok] = GENERATE_COPY(table<std::string, bool>({
      {good, true},
      {"0000000000000Z", true},
      {"ZZZZZZZZZZZZZZ", true},
      {"../x", false},
      {"..", false},
      {"", false},
      {good.substr(0, 13), false},
      {good + "0", false},
      {"0000000000000z", false},          // lower case
      {"abcdefghjkmnpq", false},
      {"000000000000I0", false},          // I, L, O, U are not Crockford digits
      {"000000000000L0", false},
      {"000000000000O0", false},
      {"000000000000U0", false},
      {"0000000000000/", false},
      {"000000000000 0", false},
      {std::string("0000000000000\0", 14), false},
      {"00000000000000.removed", false},
  }));
  CAPTURE(text);
  CHECK(QueueId::parse(text).has_value() == ok);
}
