// Group commit: one sync covers every caller that arrived before it began, callers never return
// before such a sync has finished, and a failed sync's error reaches exactly the callers it covered.
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "mailferry/spool/group_sync.hpp"

using mailferry::spool::GroupSync;

namespace {

// A slow fake fsync that counts how many syncs began and finished.
struct FakeDisk {
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::atomic<int> fail_call{-1};   // the 0-based sync that returns EIO
  int run() {
    const int n = started++;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    finished++;
    return n == fail_call.load() ? EIO : 0;
  }
};

}  // namespace

TEST_CASE("group sync: a lone caller gets one sync per call") {
  FakeDisk disk;
  GroupSync group([&] { return disk.run(); });
  for (int i = 0; i < 3; ++i) REQUIRE(group.sync() == 0);
  REQUIRE(disk.started == 3);
  REQUIRE(disk.finished == 3);
}

TEST_CASE("group sync: concurrent callers share syncs, each covered by one that began after it") {
  FakeDisk disk;
  GroupSync group([&] { return disk.run(); });
  constexpr int threads = 8;
  constexpr int calls = 25;
  std::atomic<int> uncovered{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < calls; ++i) {
        const int begun_before = disk.started.load();
        if (group.sync() != 0) uncovered++;
        // Syncs run one at a time, so sync number begun_before + 1 began after this call did.
        if (disk.finished.load() < begun_before + 1) uncovered++;
      }
    });
  }
  for (auto& th : pool) th.join();
  CHECK(uncovered == 0);
  CHECK(disk.started < threads * calls);   // shared: fewer syncs than calls
  CHECK(disk.started == disk.finished);
}

TEST_CASE("group sync: a failed sync fails the callers it covered, and only those") {
  FakeDisk disk;
  disk.fail_call = 0;
  GroupSync group([&] { return disk.run(); });
  REQUIRE(group.sync() == EIO);
  REQUIRE(group.sync() == 0);   // the next sync succeeded: its caller is fine
}
