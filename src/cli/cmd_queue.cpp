// cmd_queue.cpp: the queue as the spool has it. One block per message: id, size, arrival, state,
// sender; then each recipient still to do (or failed) with the upstream's last answer.
#include "cli/cmd_queue.hpp"

#include <cstdio>
#include <ctime>

#include "mailferry/base/exit_code.hpp"
#include "mailferry/spool/spool.hpp"

namespace mailferry::cli {
namespace {

std::string local_time(WallTime t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

const char* state_of(const message::Envelope& e, spool::Area area) {
  if (area == spool::Area::failed) return "failed";
  return e.attempts == 0 ? "queued" : "deferred";
}

void print_entry(const spool::QueueId& id, const message::Envelope& e, spool::Area area) {
  std::printf("%-14s %9llu  %s  %-8s <%s>\n", id.str().c_str(), static_cast<unsigned long long>(e.size),
              local_time(e.arrival).c_str(), state_of(e, area), e.sender.c_str());
  if (area == spool::Area::queue && e.attempts > 0) {
    std::printf("%-14s next attempt %s, %u so far; last: %s\n", "", local_time(e.next_attempt).c_str(),
                e.attempts, e.last_reply.c_str());
  }
  for (const auto& r : e.recipients) {
    switch (r.state) {
      case message::RecipientState::delivered:
        break;
      case message::RecipientState::pending:
        std::printf("%-14s   <%s>\n", "", r.address.c_str());
        break;
      case message::RecipientState::failed:
        std::printf("%-14s   <%s> failed: %s\n", "", r.address.c_str(), r.last_reply.c_str());
        break;
    }
  }
}

}  // namespace

int cmd_queue_list(const config::Config& config) {
  auto spool = spool::Spool::open_shared(config.spool_dir);
  if (!spool) {
    std::fprintf(stderr, "mailferry: %s\n", spool.error().message.c_str());
    return to_int(ExitCode::unavailable);
  }
  std::size_t count = 0;
  for (const auto area : {spool::Area::queue, spool::Area::failed}) {
    for (const auto& id : spool->list(area)) {
      auto stored = spool->load(id, area);
      if (!stored) continue;   // delivered meanwhile, or quarantined with a log line by load()
      if (count == 0) std::printf("%-14s %9s  %-19s  %-8s %s\n", "ID", "SIZE", "ARRIVAL", "STATE", "SENDER / RECIPIENTS");
      print_entry(id, stored->envelope, area);
      ++count;
    }
  }
  if (count == 0) std::printf("mail queue is empty\n");
  else std::printf("-- %zu message%s\n", count, count == 1 ? "" : "s");
  return 0;
}

int cmd_queue_show(const config::Config& config, const std::string& text) {
  auto id = spool::QueueId::parse(text);
  if (!id) {
    std::fprintf(stderr, "mailferry: %s is not a queue id (see mailferry queue list)\n", text.c_str());
    return to_int(ExitCode::usage);
  }
  auto spool = spool::Spool::open_shared(config.spool_dir);
  if (!spool) {
    std::fprintf(stderr, "mailferry: %s\n", spool.error().message.c_str());
    return to_int(ExitCode::unavailable);
  }
  for (const auto area : {spool::Area::queue, spool::Area::failed}) {
    auto stored = spool->load(*id, area);
    if (!stored) continue;
    print_entry(*id, stored->envelope, area);
    auto data = spool->read_message(*id, stored->envelope.size, area);
    if (!data) {
      std::fprintf(stderr, "mailferry: %s\n", data.error().message.c_str());
      return to_int(ExitCode::io);
    }
    std::printf("\n");
    std::fwrite(data->data(), 1, data->size(), stdout);
    return 0;
  }
  std::fprintf(stderr, "mailferry: no message %s in the queue (delivered, or deleted)\n", text.c_str());
  return to_int(ExitCode::no_user);
}

}  // namespace mailferry::cli
