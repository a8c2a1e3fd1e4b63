// spool.cpp: Spool, Incoming and Stored on plain POSIX calls.
//
// Every rule about durability lives in this file. The invariants it keeps:
//  1. A directory under queue/ (or failed/) is always complete: message and envelope are on disk
//     before the rename that makes the directory appear there, and the envelope is only ever
//     replaced by rename, never rewritten in place. So nothing ever sees a half-written message.
//  2. A message moves between areas only by renaming its whole directory, so at any moment its
//     id names exactly one directory: incoming/, queue/, failed/ or corrupt/.
//  3. A QueueId is handed out (and with it the 250) only after the rename into queue/ and the
//     fsync of queue/ have both succeeded.
//  4. incoming/ holds nothing anyone was promised: it is purged at open(), and it is where
//     removal puts what it is deleting, so a crash mid-removal leaves nothing to redeliver.
// All paths are resolved relative to directory fds opened once, with O_NOFOLLOW on the per-message
// directories; ids come only from QueueId::parse, so no caller string ever becomes a path.
#include "mailferry/spool/spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "mailferry/spool/group_sync.hpp"
#include "mailferry/spool/queue_file.hpp"

namespace mailferry::spool {

namespace {

// Bytes a message may sit in user space before reaching the kernel. Nothing is lost by buffering:
// the 250 is given only after commit(), which flushes and fsyncs first, and a write error found
// while flushing is sticky and surfaces no later than commit().
constexpr std::size_t write_buffer_size = 64 * 1024;
constexpr int max_id_attempts = 16;
constexpr int max_tree_depth = 8;
constexpr std::string_view envelope_name = "envelope";
constexpr std::string_view envelope_tmp_name = "envelope.tmp";
constexpr std::string_view message_name = "message";

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  // close() can report a deferred write error (NFS): callers that promise durability check it.
  int close_checked() {
    if (fd_ < 0) return 0;
    return ::close(std::exchange(fd_, -1)) == 0 ? 0 : errno;
  }

 private:
  int fd_ = -1;
};

// Owns one DIR*, which owns the fd it was opened from.
class DirStream {
 public:
  explicit DirStream(DIR* d) : d_(d) {}
  DirStream(const DirStream&) = delete;
  DirStream& operator=(const DirStream&) = delete;
  ~DirStream() {
    if (d_ != nullptr) ::closedir(d_);
  }
  DIR* get() const { return d_; }

 private:
  DIR* d_;
};

// The spool's directories, opened once. Immutable after open, so Incoming objects on other threads
// share it safely; shared ownership lets an Incoming outlive the Spool that began it.
int fsync_fd(int fd);

struct Dirs {
  std::string path;
  Fd root;
  Fd incoming;
  Fd queue;
  Fd failed;
  Fd corrupt;
  // fsync of queue/, grouped across threads: every commit and every removal renames into or out
  // of it and must wait for it, so concurrent ones share one fsync (a pointer: Dirs is shared const).
  std::unique_ptr<GroupSync> queue_sync;

  // fsync of an area after a rename in it; 0 or an errno.
  int sync_area(Area a) const {
    return a == Area::queue ? queue_sync->sync() : fsync_fd(failed.get());
  }

  int area_fd(Area a) const {
    switch (a) {
      case Area::queue: return queue.get();
      case Area::failed: return failed.get();
    }
    return queue.get();   // unreachable: every Area is handled above
  }
};

std::string_view area_name(Area a) {
  switch (a) {
    case Area::queue: return "queue";
    case Area::failed: return "failed";
  }
  return "queue";   // unreachable
}

std::string errno_text(int err) { return std::generic_category().message(err); }

Error sys_error(const std::string& spool, const std::string& what, int err) {
  return Error{"spool " + spool + ": " + what + ": " + errno_text(err), err};
}

std::string c_str(std::string_view s) { return std::string(s); }

Result<Fd> open_dir_at(int parent, const std::string& name) {
  const int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error{name, errno};
  return Fd(fd);
}

// write(2) until everything is written: it may be interrupted or write less than asked (and the
// write after a short one is the one that reports ENOSPC or EFBIG). Returns 0 or an errno.
int write_all(int fd, const char* data, std::size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;   // a regular file never does this; do not spin if one does
    data += n;
    len -= static_cast<std::size_t>(n);
  }
  return 0;
}

int fsync_fd(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

// Reads a whole file. Returns the bytes, or an Error carrying only errno (callers add context).
Result<std::string> read_all(int fd) {
  std::string out;
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{"read", errno};
    }
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// Names in a directory, without "." and "..". Opens "." afresh, so the listing has its own
// file offset and never disturbs (or is disturbed by) another user of `dir_fd`.
std::vector<std::string> entries(int dir_fd) {
  std::vector<std::string> names;
  const int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return names;
  DIR* raw = ::fdopendir(fd);
  if (raw == nullptr) {
    ::close(fd);
    return names;
  }
  DirStream d(raw);
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  return names;
}

// rm -r of parent/name without following symlinks. Best effort: what it leaves behind is in an
// area that is purged at the next open(). Returns 0 or the errno of the final rmdir.
int remove_tree(int parent, const std::string& name, int depth = 0) {
  if (::unlinkat(parent, name.c_str(), 0) == 0) return 0;
  if (errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return errno;   // Linux says EISDIR, POSIX allows EPERM
  if (depth < max_tree_depth) {
    auto dir = open_dir_at(parent, name);
    if (dir) {
      for (const auto& child : entries(dir->get())) remove_tree(dir->get(), child, depth + 1);
    }
  }
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return errno;
  return 0;
}

bool exists_at(int dir_fd, const std::string& name) {
  struct stat st{};
  // Anything but a clear "not there" counts as taken: a fresh id is cheap, a clash is not.
  return ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

std::uint64_t random_seed() {
  std::uint64_t seed = 0;
  if (::getrandom(&seed, sizeof seed, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof seed)) return seed;
  Fd urandom(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (urandom.valid() && ::read(urandom.get(), &seed, sizeof seed) == static_cast<ssize_t>(sizeof seed)) {
    return seed;
  }
  // No randomness at all: ids still work (EEXIST retries), they just collide more often.
  return splitmix64(static_cast<std::uint64_t>(::getpid()) ^ reinterpret_cast<std::uintptr_t>(&seed));
}

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Writes `bytes` as dir/name through dir/name.tmp: the old file stays whole until the rename, and
// the rename is durable only after the directory is fsynced.
Result<void> replace_file(const Dirs& dirs, int dir_fd, const std::string& where, std::string_view bytes) {
  const std::string tmp = c_str(envelope_tmp_name);
  Fd fd(::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return sys_error(dirs.path, "cannot create " + where + "/" + tmp, errno);
  auto fail = [&](const std::string& what, int err) -> Result<void> {
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    return sys_error(dirs.path, what + " " + where + "/" + tmp, err);
  };
  if (int err = write_all(fd.get(), bytes.data(), bytes.size())) return fail("cannot write", err);
  // fsync before the rename: otherwise a crash could leave the new name pointing at a file whose
  // data never reached the disk, and the old envelope would be gone.
  if (int err = fsync_fd(fd.get())) return fail("cannot fsync", err);
  if (int err = fd.close_checked()) return fail("cannot close", err);
  const std::string target = c_str(envelope_name);
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, target.c_str()) != 0) return fail("cannot rename", errno);
  if (int err = fsync_fd(dir_fd)) return sys_error(dirs.path, "cannot fsync " + where + "/", err);
  return {};
}

// Moves area/<id> to corrupt/<id> (or <id>.1, <id>.2, … if an earlier one has that name).
// Returns the name it got there.
Result<std::string> move_to_corrupt(const Dirs& dirs, int from_fd, std::string_view from_area,
                                    const QueueId& id) {
  std::string name = id.str();
  for (int n = 1;; ++n) {
    if (::renameat(from_fd, id.str().c_str(), dirs.corrupt.get(), name.c_str()) == 0) break;
    // rename() may replace an empty directory but not a full one (EEXIST or ENOTEMPTY).
    if ((errno != EEXIST && errno != ENOTEMPTY) || n > 1000) {
      return sys_error(dirs.path, "cannot move " + std::string(from_area) + "/" + id.str() + " to corrupt/",
                       errno);
    }
    name = id.str() + "." + std::to_string(n);
  }
  // Destination first: after a crash between the two, the message is at worst seen in both
  // places (and quarantined again), never in neither.
  if (int err = fsync_fd(dirs.corrupt.get())) return sys_error(dirs.path, "cannot fsync corrupt/", err);
  if (int err = fsync_fd(from_fd)) return sys_error(dirs.path, "cannot fsync " + std::string(from_area) + "/", err);
  return name;
}

Error quarantined(const Dirs& dirs, Area area, const QueueId& id, const std::string& problem) {
  auto moved = move_to_corrupt(dirs, dirs.area_fd(area), area_name(area), id);
  std::string msg = "spool " + dirs.path + ": " + std::string(area_name(area)) + "/" + id.str() + ": " + problem;
  if (moved) {
    msg += "; moved to " + dirs.path + "/corrupt/" + *moved + " for inspection";
  } else {
    msg += "; could not quarantine it (" + moved.error().message + ")";
  }
  return Error{msg};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Incoming

struct Incoming::State {
  std::shared_ptr<const Dirs> dirs;
  QueueId id;
  Fd dir;            // incoming/<id>/
  Fd message;        // incoming/<id>/message
  std::string buffer;
  std::uint64_t size = 0;
  std::optional<Error> failed;   // sticky: once a write failed, the message can never commit
  bool finished = false;         // committed or aborted

  std::string where() const { return "incoming/" + id.str(); }

  Result<void> flush() {
    if (failed) return *failed;
    if (buffer.empty()) return {};
    const int err = write_all(message.get(), buffer.data(), buffer.size());
    buffer.clear();
    if (err != 0) {
      failed = sys_error(dirs->path, "cannot write " + where() + "/message", err);
      return *failed;
    }
    return {};
  }

  Result<void> commit_steps(message::Envelope& envelope) {
    const std::string spool = dirs->path;
    if (auto r = flush(); !r) return r;
    // Inside incoming/<id>/ the order of the two files does not matter: nothing reads incoming/,
    // and open() purges it. What matters is that both are on disk before the rename publishes them.
    if (int err = fsync_fd(message.get())) return sys_error(spool, "cannot fsync " + where() + "/message", err);
    if (int err = message.close_checked()) return sys_error(spool, "cannot close " + where() + "/message", err);

    envelope.size = size;   // the envelope vouches for exactly what was written
    const std::string bytes = encode_envelope(envelope);
    const std::string env = c_str(envelope_name);
    Fd fd(::openat(dir.get(), env.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return sys_error(spool, "cannot create " + where() + "/envelope", errno);
    if (int err = write_all(fd.get(), bytes.data(), bytes.size())) {
      return sys_error(spool, "cannot write " + where() + "/envelope", err);
    }
    if (int err = fsync_fd(fd.get())) return sys_error(spool, "cannot fsync " + where() + "/envelope", err);
    if (int err = fd.close_checked()) return sys_error(spool, "cannot close " + where() + "/envelope", err);

    // fsync incoming/<id>/ itself: fsync of a file makes its data durable, not its name. Without
    // this, power loss after the rename below could leave queue/<id>/ lacking a file.
    if (int err = fsync_fd(dir.get())) return sys_error(spool, "cannot fsync " + where() + "/", err);

    // The rename is the commit point: atomic, so queue/<id> is either absent or complete.
    if (::renameat(dirs->incoming.get(), id.str().c_str(), dirs->queue.get(), id.str().c_str()) != 0) {
      return sys_error(spool, "cannot rename " + where() + " to queue/", errno);
    }
    // fsync queue/ as well: rename() is durable only once the directory entry is on disk, and a
    // 250 promises the message survives power loss.
    if (int err = dirs->queue_sync->sync()) {
      // No 250 will be given, so take the message back out of queue/: the client keeps ownership
      // and will retry, and delivering this copy as well would be a duplicate. If it cannot be
      // taken back, it is a durable-or-not copy that at-least-once permits.
      if (::renameat(dirs->queue.get(), id.str().c_str(), dirs->incoming.get(), id.str().c_str()) != 0) {
        remove_tree(dirs->queue.get(), id.str());
      }
      return sys_error(spool, "cannot fsync queue/", err);
    }
    return {};
  }

  void discard() {
    if (finished) return;
    finished = true;
    message.reset();
    dir.reset();
    // No fsync: a removal that does not survive a crash is redone by the purge at open().
    remove_tree(dirs->incoming.get(), id.str());
  }
};

Incoming::Incoming(std::unique_ptr<State> s) : s_(std::move(s)) {}
Incoming::Incoming(Incoming&&) noexcept = default;
Incoming& Incoming::operator=(Incoming&& other) noexcept {
  if (this != &other) {
    abort();
    s_ = std::move(other.s_);
  }
  return *this;
}
Incoming::~Incoming() { abort(); }

Result<void> Incoming::write(std::span<const char> bytes) {
  if (!s_ || s_->finished) return Error{"spool: write to a message already committed or aborted"};
  if (s_->failed) return *s_->failed;
  if (s_->buffer.size() + bytes.size() > write_buffer_size) {
    if (auto r = s_->flush(); !r) return r;
  }
  if (bytes.size() >= write_buffer_size) {
    // Large chunks go straight to the kernel rather than through the buffer.
    if (int err = write_all(s_->message.get(), bytes.data(), bytes.size())) {
      s_->failed = sys_error(s_->dirs->path, "cannot write " + s_->where() + "/message", err);
      return *s_->failed;
    }
  } else {
    if (s_->buffer.capacity() < write_buffer_size) s_->buffer.reserve(write_buffer_size);
    s_->buffer.append(bytes.data(), bytes.size());
  }
  s_->size += bytes.size();
  return {};
}

std::uint64_t Incoming::size() const { return s_ ? s_->size : 0; }

Result<QueueId> Incoming::commit(message::Envelope envelope) {
  if (!s_ || s_->finished) return Error{"spool: commit of a message already committed or aborted"};
  if (auto r = s_->commit_steps(envelope); !r) {
    // Whatever step failed, the client gets a 4xx and keeps the message: leave nothing behind.
    Error e = r.error();
    s_->discard();
    return e;
  }
  s_->finished = true;
  s_->dir.reset();
  return s_->id;
}

void Incoming::abort() {
  if (s_) s_->discard();
}

// ---------------------------------------------------------------------------------------------
// Spool

struct Spool::State {
  std::shared_ptr<const Dirs> dirs;
  Fd lock;                                   // held (flock) for the life of an exclusive Spool
  std::uint64_t seed = 0;                    // random, read once
  std::atomic<std::uint64_t> counter{0};     // atomic, so begin() is safe from any thread

  std::uint64_t next_entropy() {
    // splitmix64 over seed + k: distinct for every k, unpredictable across processes.
    return splitmix64(seed + counter.fetch_add(1, std::memory_order_relaxed) * 0x9E3779B97F4A7C15ULL);
  }
};

namespace {

// mkdir -p; only the last component's failure matters (parents usually exist and may be unwritable).
Result<void> make_spool_dir(const std::string& dir) {
  for (std::size_t pos = dir.find('/', 1); pos != std::string::npos; pos = dir.find('/', pos + 1)) {
    ::mkdir(dir.substr(0, pos).c_str(), 0755);
  }
  // 0700: the spool holds other people's mail.
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return sys_error(dir, "cannot create directory", errno);
  return {};
}

Result<Fd> take_lock(const std::string& path, int root) {
  Fd fd(::openat(root, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return sys_error(path, "cannot open lock file", errno);
  // flock locks belong to the open file description, so a second open() in the same process is
  // refused just like another process; the lock goes away with the fd, even on kill -9.
  int rc = 0;
  while ((rc = ::flock(fd.get(), LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
  }
  if (rc != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) return sys_error(path, "cannot lock " + path + "/lock", err);
    char buf[32] = {};
    const ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) pid = "unknown";
    return Error{"spool " + path + " is in use by another mailferry process (pid " + pid + ")", err};
  }
  // The pid is for the message above only. Best effort: on a full disk the daemon must still
  // start, because delivering the queue is what frees space.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(fd.get(), pid.data(), pid.size(), 0);
  }
  return fd;
}

// Recovery at open(). incoming/ holds only messages nobody acknowledged (and removals cut short
// by a crash), so all of it goes. In queue/, an envelope.tmp is an update that never reached its
// rename: the envelope next to it is still the valid one.
void recover(const Dirs& dirs) {
  for (const auto& name : entries(dirs.incoming.get())) remove_tree(dirs.incoming.get(), name);
  for (const auto& name : entries(dirs.queue.get())) {
    auto dir = open_dir_at(dirs.queue.get(), name);
    if (!dir) continue;
    for (const auto& file : entries(dir->get())) {
      if (file.size() > 4 && file.ends_with(".tmp")) ::unlinkat(dir->get(), file.c_str(), 0);
    }
  }
}

struct Opened {
  std::shared_ptr<Dirs> dirs;
  Fd lock;
};

Result<Opened> open_dirs(const std::string& dir, bool exclusive) {
  if (dir.empty()) return Error{"spool directory is not set"};
  if (exclusive) {
    if (auto r = make_spool_dir(dir); !r) return r.error();
  }
  auto dirs = std::make_shared<Dirs>();
  dirs->path = dir;
  dirs->root = Fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirs->root.valid()) return sys_error(dir, "cannot open directory", errno);

  Opened out;
  if (exclusive) {
    auto lock = take_lock(dir, dirs->root.get());
    if (!lock) return lock.error();
    out.lock = std::move(*lock);
  }

  bool created = false;
  std::pair<const char*, Fd*> areas[] = {{"incoming", &dirs->incoming},
                                        {"queue", &dirs->queue},
                                        {"failed", &dirs->failed},
                                        {"corrupt", &dirs->corrupt}};
  for (auto& [name, fd] : areas) {
    if (exclusive) {
      if (::mkdirat(dirs->root.get(), name, 0700) == 0) {
        created = true;
      } else if (errno != EEXIST) {
        return sys_error(dir, std::string("cannot create ") + name + "/", errno);
      }
    }
    auto opened = open_dir_at(dirs->root.get(), name);
    if (!opened) return sys_error(dir, std::string("cannot open ") + name + "/", opened.error().sys_errno);
    *fd = std::move(*opened);
  }
  dirs->queue_sync = std::make_unique<GroupSync>([queue = dirs->queue.get()] { return fsync_fd(queue); });
  // New area directories must survive a crash before anything is committed into them.
  if (created) {
    if (int err = fsync_fd(dirs->root.get())) return sys_error(dir, "cannot fsync", err);
  }
  if (exclusive) recover(*dirs);
  out.dirs = std::move(dirs);
  return out;
}

}  // namespace

Spool::Spool(std::unique_ptr<State> s) : s_(std::move(s)) {}
Spool::Spool(Spool&&) noexcept = default;
Spool& Spool::operator=(Spool&&) noexcept = default;
Spool::~Spool() = default;

Result<Spool> Spool::open(const std::string& dir) {
  auto opened = open_dirs(dir, true);
  if (!opened) return opened.error();
  auto s = std::make_unique<State>();
  s->dirs = std::move(opened->dirs);
  s->lock = std::move(opened->lock);
  s->seed = random_seed();
  return Spool(std::move(s));
}

Result<Spool> Spool::open_shared(const std::string& dir) {
  auto opened = open_dirs(dir, false);
  if (!opened) return opened.error();
  auto s = std::make_unique<State>();
  s->dirs = std::move(opened->dirs);
  s->seed = random_seed();
  return Spool(std::move(s));
}

const std::string& Spool::dir() const { return s_->dirs->path; }

Result<Incoming> Spool::begin(WallTime now) {
  const Dirs& dirs = *s_->dirs;
  for (int attempt = 0; attempt < max_id_attempts; ++attempt) {
    const QueueId id = QueueId::make(now, s_->next_entropy());
    const std::string& name = id.str();
    // mkdir is the reservation: EEXIST means another message took this id first.
    if (::mkdirat(dirs.incoming.get(), name.c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;
      return sys_error(dirs.path, "cannot create incoming/" + name, errno);
    }
    // The id must also be free in the other areas, or commit would clash with (or, for an empty
    // directory, silently replace) another message. Checked after the reservation, in the order
    // messages move (queue → failed / corrupt), so a concurrent move cannot slip past the check.
    if (exists_at(dirs.queue.get(), name) || exists_at(dirs.failed.get(), name) ||
        exists_at(dirs.corrupt.get(), name)) {
      ::unlinkat(dirs.incoming.get(), name.c_str(), AT_REMOVEDIR);
      continue;
    }
    auto st = std::make_unique<Incoming::State>(Incoming::State{s_->dirs, id, {}, {}, {}, 0, {}, false});
    auto dir = open_dir_at(dirs.incoming.get(), name);
    if (!dir) {
      remove_tree(dirs.incoming.get(), name);
      return sys_error(dirs.path, "cannot open incoming/" + name, dir.error().sys_errno);
    }
    st->dir = std::move(*dir);
    const std::string msg = c_str(message_name);
    st->message = Fd(::openat(st->dir.get(), msg.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!st->message.valid()) {
      const int err = errno;
      st->discard();
      return sys_error(dirs.path, "cannot create incoming/" + name + "/message", err);
    }
    return Incoming(std::move(st));
  }
  return Error{"spool " + dirs.path + ": no free queue id after " + std::to_string(max_id_attempts) + " tries"};
}

std::vector<QueueId> Spool::list(Area area) const {
  std::vector<QueueId> ids;
  for (const auto& name : entries(s_->dirs->area_fd(area))) {
    if (auto id = QueueId::parse(name)) ids.push_back(std::move(*id));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<Stored> Spool::load(const QueueId& id, Area area) {
  const Dirs& dirs = *s_->dirs;
  const std::string where = std::string(area_name(area)) + "/" + id.str();
  auto dir = open_dir_at(dirs.area_fd(area), id.str());
  if (!dir) return sys_error(dirs.path, "cannot open " + where, dir.error().sys_errno);
  const std::string env = c_str(envelope_name);
  Fd fd(::openat(dir->get(), env.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    const int err = errno;
    // A directory in queue/ without an envelope cannot come from this file: commit writes the
    // envelope before the rename that publishes the directory, update replaces it by rename, and
    // remove moves the whole directory out in one rename. So this is outside damage (fsck, a
    // person) — not a removal cut short — and the message may never have been delivered: keep
    // the bytes for a human rather than purge them.
    if (err == ENOENT) return quarantined(dirs, area, id, "no envelope");
    return sys_error(dirs.path, "cannot open " + where + "/envelope", err);
  }
  auto bytes = read_all(fd.get());
  if (!bytes) return sys_error(dirs.path, "cannot read " + where + "/envelope", bytes.error().sys_errno);
  auto envelope = decode_envelope(*bytes);
  if (!envelope) return quarantined(dirs, area, id, envelope.error().message);
  return Stored{id, std::move(*envelope)};
}

Result<std::string> Spool::read_message(const QueueId& id, std::uint64_t expected_size, Area area) {
  const Dirs& dirs = *s_->dirs;
  const std::string where = std::string(area_name(area)) + "/" + id.str();
  auto dir = open_dir_at(dirs.area_fd(area), id.str());
  if (!dir) return sys_error(dirs.path, "cannot open " + where, dir.error().sys_errno);
  const std::string msg = c_str(message_name);
  Fd fd(::openat(dir->get(), msg.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return quarantined(dirs, area, id, "no message file");
    return sys_error(dirs.path, "cannot open " + where + "/message", err);
  }
  auto size_problem = [&](std::uint64_t actual) {
    return "message file has " + std::to_string(actual) + " bytes, envelope says " + std::to_string(expected_size);
  };
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return sys_error(dirs.path, "cannot stat " + where + "/message", errno);
  // Checked before reading, so a truncated or overgrown file is never sent even in part.
  if (static_cast<std::uint64_t>(st.st_size) != expected_size) {
    fd.reset();
    return quarantined(dirs, area, id, size_problem(static_cast<std::uint64_t>(st.st_size)));
  }
  auto bytes = read_all(fd.get());
  if (!bytes) return sys_error(dirs.path, "cannot read " + where + "/message", bytes.error().sys_errno);
  if (bytes->size() != expected_size) {
    fd.reset();
    return quarantined(dirs, area, id, size_problem(bytes->size()));
  }
  return std::move(*bytes);
}

Result<void> Spool::update(const QueueId& id, const message::Envelope& e) {
  const Dirs& dirs = *s_->dirs;
  const std::string where = "queue/" + id.str();
  auto dir = open_dir_at(dirs.queue.get(), id.str());
  if (!dir) return sys_error(dirs.path, "cannot open " + where, dir.error().sys_errno);
  return replace_file(dirs, dir->get(), where, encode_envelope(e));
}

Result<void> Spool::remove(const QueueId& id, Area area) {
  const Dirs& dirs = *s_->dirs;
  const int from = dirs.area_fd(area);
  const std::string where = std::string(area_name(area)) + "/" + id.str();
  // Deleting file by file would leave, after a crash, a directory that is neither a message nor
  // gone. Instead one rename takes the whole directory out of the area (atomic: load() sees all
  // or nothing), into incoming/, the one area open() purges wholesale. The name there cannot be a
  // QueueId, so begin() never collides with it.
  const std::string trash = id.str() + "-" + hex64(s_->next_entropy()) + ".removed";
  if (::renameat(from, id.str().c_str(), dirs.incoming.get(), trash.c_str()) != 0) {
    return sys_error(dirs.path, "cannot remove " + where, errno);
  }
  // No fsync of the area (as Postfix does not fsync a delivered queue file's removal): a process
  // crash cannot undo the rename, only a power loss within the kernel's writeback delay can, and
  // then the message is delivered once more — at least once, never lost. An fsync here would put
  // a second disk flush on every message and make the next commit wait behind it.
  remove_tree(dirs.incoming.get(), trash);
  return {};
}

Result<void> Spool::fail(const QueueId& id, const message::Envelope& e) {
  const Dirs& dirs = *s_->dirs;
  // Final envelope first, while the message is still in queue/: whichever side of a crash we land
  // on, the directory holds a complete envelope.
  if (auto r = update(id, e); !r) return r;
  if (::renameat(dirs.queue.get(), id.str().c_str(), dirs.failed.get(), id.str().c_str()) != 0) {
    return sys_error(dirs.path, "cannot move queue/" + id.str() + " to failed/", errno);
  }
  // Destination first: a crash between the two fsyncs may show the message in queue/ again
  // (tried once more, then failed again), never in neither.
  if (int err = dirs.sync_area(Area::failed)) return sys_error(dirs.path, "cannot fsync failed/", err);
  if (int err = dirs.sync_area(Area::queue)) return sys_error(dirs.path, "cannot fsync queue/", err);
  return {};
}

Result<void> Spool::quarantine(const QueueId& id) {
  auto moved = move_to_corrupt(*s_->dirs, s_->dirs->queue.get(), "queue", id);
  if (!moved) return moved.error();
  return {};
}

}  // namespace mailferry::spool

namespace mailferry::spool {

Result<void> Spool::write_note(std::string_view name, std::string_view content) {
  const Dirs& dirs = *s_->dirs;
  const std::string target(name);
  const std::string tmp = target + ".tmp";
  Fd fd(::openat(dirs.root.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return sys_error(dirs.path, "cannot create " + tmp, errno);
  if (int err = write_all(fd.get(), content.data(), content.size())) return sys_error(dirs.path, "cannot write " + tmp, err);
  if (int err = fsync_fd(fd.get())) return sys_error(dirs.path, "cannot fsync " + tmp, err);
  if (int err = fd.close_checked()) return sys_error(dirs.path, "cannot close " + tmp, err);
  // rename: a reader sees the old note or the new one, never half of one.
  if (::renameat(dirs.root.get(), tmp.c_str(), dirs.root.get(), target.c_str()) != 0) {
    return sys_error(dirs.path, "cannot rename " + tmp, errno);
  }
  return {};
}

std::optional<std::string> Spool::read_note(std::string_view name) const {
  const Dirs& dirs = *s_->dirs;
  const std::string target(name);
  Fd fd(::openat(dirs.root.get(), target.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return std::nullopt;
  std::string out;
  char buf[256];
  while (out.size() < 4096) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace mailferry::spool
