// spool.tests.cpp: Spool, Incoming and Stored against a real directory under /tmp.
#include "mailferry/spool/spool.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mailferry/spool/queue_file.hpp"

using mailferry::WallTime;
using mailferry::message::Envelope;
using mailferry::message::RecipientState;
using mailferry::spool::Area;
using mailferry::spool::Incoming;
using mailferry::spool::QueueId;
using mailferry::spool::Spool;
namespace fs = std::filesystem;

namespace {

// A fresh directory from mkdtemp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/mailferry-spool-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string spool() const { return path_ + "/spool"; }

 private:
  std::string path_;
};

WallTime at_us(long long us) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::microseconds(us)));
}

const WallTime t0 = at_us(1700000000000000);

Envelope envelope() {
  Envelope e;
  e.sender = "sender@example.com";
  e.recipients = {{"a@example.com", RecipientState::pending, ""}, {"b@example.org", RecipientState::pending, ""}};
  e.client = "192.0.2.7";
  e.listener = "0.0.0.0:587";
  e.arrival = t0;
  return e;
}

std::size_t count_entries(const std::string& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

Spool open_spool(const TempDir& t) {
  auto s = Spool::open(t.spool());
  if (!s.ok()) FAIL(s.error().message);
  return std::move(s).value();
}

QueueId spool_message(Spool& spool, const std::string& body, WallTime now = t0, Envelope e = envelope()) {
  auto in = spool.begin(now);
  REQUIRE(in.ok());
  REQUIRE(in->write(body).ok());
  auto id = in->commit(std::move(e));
  if (!id.ok()) FAIL(id.error().message);
  return *id;
}

// Makes writes past `bytes` fail with EFBIG instead of killing the process, for the length of a scope.
// The nearest thing to a full disk that a test can arrange without mounting a tmpfs.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved_;
    lim.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &lim) == 0;
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
  bool ok_ = false;
};

}  // namespace

TEST_CASE("spool: open creates the layout", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  CHECK(spool.dir() == t.spool());
  for (const char* area : {"incoming", "queue", "failed", "corrupt"}) CHECK(fs::is_directory(t.spool() + "/" + area));
  CHECK((fs::status(t.spool()).permissions() & fs::perms::all) == fs::perms::owner_all);
  CHECK(slurp(t.spool() + "/lock") == std::to_string(::getpid()) + "\n");
  CHECK(spool.list(Area::queue).empty());
  CHECK(spool.list(Area::failed).empty());
}

TEST_CASE("spool: begin, write, commit, then list, load and read", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const std::string body = "Subject: hi\r\n\r\nhello\r\n";
  auto in = spool.begin(t0);
  REQUIRE(in.ok());
  REQUIRE(in->write(std::string_view(body).substr(0, 5)).ok());
  REQUIRE(in->write(std::string_view(body).substr(5)).ok());
  CHECK(in->size() == body.size());
  Envelope e = envelope();
  e.size = 999;   // commit sets the size from what was written
  auto id = in->commit(e);
  REQUIRE(id.ok());

  CHECK(spool.list(Area::queue) == std::vector<QueueId>{*id});
  CHECK(count_entries(t.spool() + "/incoming") == 0);
  CHECK(fs::is_regular_file(t.spool() + "/queue/" + id->str() + "/message"));
  CHECK(fs::is_regular_file(t.spool() + "/queue/" + id->str() + "/envelope"));

  auto stored = spool.load(*id);
  REQUIRE(stored.ok());
  CHECK(stored->id == *id);
  e.size = body.size();
  CHECK(stored->envelope == e);
  auto bytes = spool.read_message(*id, stored->envelope.size);
  REQUIRE(bytes.ok());
  CHECK(*bytes == body);

  // The Incoming is spent.
  CHECK_FALSE(in->write("more").ok());
  CHECK_FALSE(in->commit(envelope()).ok());
}

TEST_CASE("spool: messages larger than the write buffer, in odd chunks", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const std::size_t chunk = GENERATE(1U, 1000U, 65535U, 65536U, 65537U, 300000U);
  std::string body;
  for (std::size_t i = 0; i < 400000; ++i) body.push_back(static_cast<char>('a' + i % 26));
  auto in = spool.begin(t0);
  REQUIRE(in.ok());
  for (std::size_t pos = 0; pos < body.size(); pos += chunk) {
    REQUIRE(in->write(std::string_view(body).substr(pos, chunk)).ok());
  }
  auto id = in->commit(envelope());
  REQUIRE(id.ok());
  auto stored = spool.load(*id);
  REQUIRE(stored.ok());
  CHECK(stored->envelope.size == body.size());
  auto bytes = spool.read_message(*id, body.size());
  REQUIRE(bytes.ok());
  CHECK(*bytes == body);
}

TEST_CASE("spool: an empty message commits", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId id = spool_message(spool, "");
  auto bytes = spool.read_message(id, 0);
  REQUIRE(bytes.ok());
  CHECK(bytes->empty());
}

TEST_CASE("spool: an uncommitted Incoming leaves nothing behind", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  SECTION("destroyed") {
    auto in = spool.begin(t0);
    REQUIRE(in.ok());
    REQUIRE(in->write("partial").ok());
    CHECK(count_entries(t.spool() + "/incoming") == 1);
  }
  SECTION("aborted, twice") {
    auto in = spool.begin(t0);
    REQUIRE(in.ok());
    REQUIRE(in->write("partial").ok());
    in->abort();
    in->abort();
    CHECK_FALSE(in->commit(envelope()).ok());
  }
  SECTION("overwritten by move assignment") {
    auto a = spool.begin(t0);
    auto b = spool.begin(t0);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(count_entries(t.spool() + "/incoming") == 2);
    *a = std::move(*b);
    CHECK(count_entries(t.spool() + "/incoming") == 1);
  }
  CHECK(count_entries(t.spool() + "/incoming") == 0);
  CHECK(count_entries(t.spool() + "/queue") == 0);
}

TEST_CASE("spool: ids are distinct even in the same microsecond", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  std::set<QueueId> ids;
  std::vector<Incoming> open;
  // All begun before any commits: with 15 bits of entropy some names collide, and begin() retries.
  for (int i = 0; i < 300; ++i) {
    auto in = spool.begin(t0);
    REQUIRE(in.ok());
    open.push_back(std::move(*in));
  }
  for (auto& in : open) {
    auto id = in.commit(envelope());
    REQUIRE(id.ok());
    ids.insert(*id);
  }
  CHECK(ids.size() == 300);
  CHECK(spool.list(Area::queue).size() == 300);
}

TEST_CASE("spool: list is sorted and ignores what is not a queue id", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId later = spool_message(spool, "b", t0 + std::chrono::seconds(5));
  const QueueId earlier = spool_message(spool, "a", t0);
  fs::create_directory(t.spool() + "/queue/lost+found");
  spit(t.spool() + "/queue/README", "x");
  CHECK(spool.list(Area::queue) == std::vector<QueueId>{earlier, later});
}

TEST_CASE("spool: open purges incoming/ and stale temp files", "[spool]") {
  TempDir t;
  QueueId id = QueueId::make(t0, 0);
  {
    Spool spool = open_spool(t);
    id = spool_message(spool, "kept");
    auto in = spool.begin(t0);
    REQUIRE(in.ok());
    REQUIRE(in->write("never acknowledged").ok());
    // Simulate a crash: the Incoming's directory stays (leak the object's effect by copying it).
    fs::copy(t.spool() + "/incoming", t.path() + "/leftover", fs::copy_options::recursive);
  }
  fs::copy(t.path() + "/leftover", t.spool() + "/incoming", fs::copy_options::recursive);
  fs::create_directories(t.spool() + "/incoming/" + id.str() + "-00.removed/deep/er");
  spit(t.spool() + "/incoming/stray-file", "x");
  spit(t.spool() + "/queue/" + id.str() + "/envelope.tmp", "torn");
  REQUIRE(count_entries(t.spool() + "/incoming") == 3);

  SECTION("open_shared leaves them") {
    auto shared = Spool::open_shared(t.spool());
    REQUIRE(shared.ok());
    CHECK(count_entries(t.spool() + "/incoming") == 3);
    CHECK(fs::exists(t.spool() + "/queue/" + id.str() + "/envelope.tmp"));
  }
  SECTION("open purges them") {
    Spool spool = open_spool(t);
    CHECK(count_entries(t.spool() + "/incoming") == 0);
    CHECK_FALSE(fs::exists(t.spool() + "/queue/" + id.str() + "/envelope.tmp"));
    CHECK(spool.list(Area::queue) == std::vector<QueueId>{id});
    auto stored = spool.load(id);
    REQUIRE(stored.ok());
    CHECK(spool.read_message(id, stored->envelope.size).ok());
  }
}

TEST_CASE("spool: a second open() is refused while the first Spool lives", "[spool]") {
  TempDir t;
  {
    Spool first = open_spool(t);
    auto second = Spool::open(t.spool());
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().message ==
          "spool " + t.spool() + " is in use by another mailferry process (pid " + std::to_string(::getpid()) + ")");
    // `queue list` still works next to the daemon.
    auto shared = Spool::open_shared(t.spool());
    CHECK(shared.ok());
    // Moving the Spool keeps the lock.
    Spool moved = std::move(first);
    CHECK_FALSE(Spool::open(t.spool()).ok());
  }
  CHECK(Spool::open(t.spool()).ok());
}

TEST_CASE("spool: open_shared does not create a spool", "[spool]") {
  TempDir t;
  auto shared = Spool::open_shared(t.spool());
  REQUIRE_FALSE(shared.ok());
  CHECK(shared.error().message.find(t.spool()) != std::string::npos);
  CHECK_FALSE(fs::exists(t.spool()));
}

TEST_CASE("spool: open reports a spool it cannot create", "[spool]") {
  TempDir t;
  spit(t.path() + "/file", "x");
  auto s = Spool::open(t.path() + "/file/spool");
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().sys_errno == ENOTDIR);
}

TEST_CASE("spool: update replaces the envelope", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId id = spool_message(spool, "hello");
  auto stored = spool.load(id);
  REQUIRE(stored.ok());
  Envelope e = stored->envelope;
  e.attempts = 2;
  e.next_attempt = t0 + std::chrono::minutes(2);
  e.last_reply = "451 4.3.0 mailbox busy\r\n";
  e.recipients[0].state = RecipientState::delivered;
  e.recipients[0].last_reply = "250 ok";
  REQUIRE(spool.update(id, e).ok());
  auto again = spool.load(id);
  REQUIRE(again.ok());
  CHECK(again->envelope == e);
  CHECK(count_entries(t.spool() + "/queue/" + id.str()) == 2);   // no envelope.tmp left
  CHECK_FALSE(spool.update(QueueId::make(t0, 12345), e).ok());
}

TEST_CASE("spool: remove", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId id = spool_message(spool, "hello");
  const QueueId other = spool_message(spool, "other");
  REQUIRE(spool.remove(id).ok());
  CHECK(spool.list(Area::queue) == std::vector<QueueId>{other});
  CHECK_FALSE(fs::exists(t.spool() + "/queue/" + id.str()));
  CHECK(count_entries(t.spool() + "/incoming") == 0);
  CHECK_FALSE(spool.load(id).ok());
  const auto again = spool.remove(id);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().sys_errno == ENOENT);
}

TEST_CASE("spool: fail moves the message to failed/", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId id = spool_message(spool, "hello");
  auto stored = spool.load(id);
  REQUIRE(stored.ok());
  Envelope e = stored->envelope;
  e.recipients[1].state = RecipientState::failed;
  e.recipients[1].last_reply = "550 5.1.1 no such user";
  e.attempts = 1;
  REQUIRE(spool.fail(id, e).ok());
  CHECK(spool.list(Area::queue).empty());
  CHECK(spool.list(Area::failed) == std::vector<QueueId>{id});
  auto failed = spool.load(id, Area::failed);
  REQUIRE(failed.ok());
  CHECK(failed->envelope == e);
  auto bytes = spool.read_message(id, e.size, Area::failed);
  REQUIRE(bytes.ok());
  CHECK(*bytes == "hello");
  CHECK_FALSE(spool.load(id).ok());

  REQUIRE(spool.remove(id, Area::failed).ok());
  CHECK(spool.list(Area::failed).empty());
}

TEST_CASE("spool: an envelope that does not decode is quarantined", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId id = spool_message(spool, "hello");
  const std::string env = t.spool() + "/queue/" + id.str() + "/envelope";
  const std::string good = slurp(env);
  SECTION("torn") { spit(env, good.substr(0, good.size() / 2)); }
  SECTION("garbage") { spit(env, "not an envelope"); }
  SECTION("missing") { fs::remove(env); }
  auto r = spool.load(id);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("corrupt/" + id.str()) != std::string::npos);
  CHECK(spool.list(Area::queue).empty());
  CHECK(fs::is_directory(t.spool() + "/corrupt/" + id.str()));
  CHECK(slurp(t.spool() + "/corrupt/" + id.str() + "/message") == "hello");
}

TEST_CASE("spool: a message whose size differs from its envelope is quarantined", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId id = spool_message(spool, "hello world");
  auto stored = spool.load(id);
  REQUIRE(stored.ok());
  const std::string msg = t.spool() + "/queue/" + id.str() + "/message";
  SECTION("truncated on disk") { spit(msg, "hello"); }
  SECTION("grown on disk") { spit(msg, "hello world, and more"); }
  SECTION("missing") { fs::remove(msg); }
  auto r = spool.read_message(id, stored->envelope.size);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("corrupt/" + id.str()) != std::string::npos);
  CHECK(spool.list(Area::queue).empty());
  CHECK(fs::is_directory(t.spool() + "/corrupt/" + id.str()));
}

TEST_CASE("spool: quarantine keeps earlier quarantined copies", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  const QueueId id = spool_message(spool, "first");
  REQUIRE(spool.quarantine(id).ok());
  fs::create_directory(t.spool() + "/queue/" + id.str());
  spit(t.spool() + "/queue/" + id.str() + "/message", "second");
  REQUIRE(spool.quarantine(id).ok());
  CHECK(slurp(t.spool() + "/corrupt/" + id.str() + "/message") == "first");
  CHECK(slurp(t.spool() + "/corrupt/" + id.str() + ".1/message") == "second");
  CHECK(spool.list(Area::queue).empty());
}

TEST_CASE("spool: begin never reuses an id that is queued, failed or quarantined", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  // Same `now` every time and far more messages than can live in one microsecond without retries.
  std::set<QueueId> ids;
  for (int i = 0; i < 200; ++i) {
    const QueueId id = spool_message(spool, "m");
    CHECK(ids.insert(id).second);
    if (i % 3 == 1) REQUIRE(spool.fail(id, spool.load(id)->envelope).ok());
    if (i % 3 == 2) REQUIRE(spool.quarantine(id).ok());
  }
  CHECK(spool.list(Area::queue).size() + spool.list(Area::failed).size() + count_entries(t.spool() + "/corrupt") ==
        200);
}

TEST_CASE("spool: a write error (disk full, file too large) fails the commit and leaves nothing", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  std::string big(200 * 1024, 'x');
  mailferry::Result<void> write_result;
  mailferry::Result<QueueId> commit_result = mailferry::Error{"not run"};
  bool limited = false;

  SECTION("reported by write") {
    auto in = spool.begin(t0);
    REQUIRE(in.ok());
    {
      FileSizeLimit limit(4096);
      limited = limit.ok();
      write_result = in->write(big);
      commit_result = in->commit(envelope());
    }
    REQUIRE(limited);
    REQUIRE_FALSE(write_result.ok());
    CHECK(write_result.error().sys_errno == EFBIG);
  }
  SECTION("found when commit flushes the buffer") {
    auto in = spool.begin(t0);
    REQUIRE(in.ok());
    REQUIRE(in->write(std::string(1000, 'y')).ok());   // still in the user-space buffer
    {
      FileSizeLimit limit(100);
      limited = limit.ok();
      commit_result = in->commit(envelope());
    }
    REQUIRE(limited);
  }
  SECTION("later writes repeat the error") {
    auto in = spool.begin(t0);
    REQUIRE(in.ok());
    {
      FileSizeLimit limit(4096);
      limited = limit.ok();
      write_result = in->write(big);
    }
    REQUIRE(limited);
    REQUIRE_FALSE(write_result.ok());
    CHECK_FALSE(in->write("x").ok());   // sticky, even though the limit is gone
    commit_result = in->commit(envelope());
  }
  REQUIRE_FALSE(commit_result.ok());
  CHECK(commit_result.error().sys_errno == EFBIG);
  CHECK(commit_result.error().message.find(t.spool()) != std::string::npos);
  CHECK(count_entries(t.spool() + "/queue") == 0);
  CHECK(count_entries(t.spool() + "/incoming") == 0);
  // The spool still works once space is back.
  CHECK_FALSE(spool_message(spool, "after").str().empty());
}

TEST_CASE("spool: Incomings commit from several threads", "[spool]") {
  TempDir t;
  Spool spool = open_spool(t);
  constexpr int threads = 4;
  constexpr int per_thread = 20;
  std::vector<std::vector<Incoming>> work(threads);
  for (int i = 0; i < threads; ++i) {
    for (int j = 0; j < per_thread; ++j) {
      auto in = spool.begin(t0);
      REQUIRE(in.ok());
      work[static_cast<std::size_t>(i)].push_back(std::move(*in));
    }
  }
  std::vector<int> failures(threads, 0);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      for (auto& in : work[static_cast<std::size_t>(i)]) {
        if (!in.write(std::string(70000, 'z')).ok() || !in.commit(envelope()).ok()) ++failures[static_cast<std::size_t>(i)];
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int f : failures) CHECK(f == 0);
  CHECK(spool.list(Area::queue).size() == threads * per_thread);
}

TEST_CASE("spool: an Incoming may outlive its Spool", "[spool]") {
  TempDir t;
  auto spool = std::make_unique<Spool>(open_spool(t));
  auto in = spool->begin(t0);
  REQUIRE(in.ok());
  spool.reset();
  REQUIRE(in->write("late").ok());
  auto id = in->commit(envelope());
  REQUIRE(id.ok());
  Spool reopened = open_spool(t);
  CHECK(reopened.list(Area::queue) == std::vector<QueueId>{*id});
}
