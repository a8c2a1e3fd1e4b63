// metrics.cpp: the Prometheus text format (exposition format 0.0.4).
#include "mailferry/metrics/metrics.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <string_view>
#include <vector>

namespace mailferry::metrics {
namespace {

// Label values may hold any UTF-8; backslash, double quote and line feed are escaped.
std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  // The shortest text that reads back as the same double.
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

using Labels = std::vector<std::pair<std::string_view, std::string>>;

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, const Labels& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        out_ += escape_label(v);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += number(value);
    out_ += '\n';
  }
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

void by_label(Writer& w, std::string_view name, std::string_view label,
              const std::map<std::string, std::uint64_t>& values) {
  for (const auto& [k, v] : values) w.sample(name, {{label, k}}, static_cast<double>(v));
}

}  // namespace

bool parse_proc_stat(std::string_view self_stat, std::string_view system_stat, long ticks_per_second,
                     long page_size, ProcessStats& out) {
  // The command name (field 2) may hold spaces and parentheses; the fields after the last ')' are
  // numbers, starting with field 3 (the state letter).
  const auto close = self_stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) return false;
  std::vector<std::string_view> f;
  std::string_view rest = self_stat.substr(close + 1);
  while (!rest.empty()) {
    const auto start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const auto end = rest.find_first_of(" \n");
    f.push_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  // f[0] is field 3: utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
  if (f.size() < 22) return false;
  auto num = [](std::string_view t, std::uint64_t& v) {
    const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    return r.ec == std::errc() && r.ptr == t.data() + t.size();
  };
  std::uint64_t utime = 0, stime = 0, start = 0, vsize = 0, rss = 0, btime = 0;
  if (!num(f[11], utime) || !num(f[12], stime) || !num(f[19], start) || !num(f[20], vsize) || !num(f[21], rss)) {
    return false;
  }
  const auto at = system_stat.find("btime ");
  if (at == std::string_view::npos || (at > 0 && system_stat[at - 1] != '\n')) return false;
  auto line = system_stat.substr(at + 6);
  line = line.substr(0, line.find('\n'));
  if (!num(line, btime)) return false;
  const double ticks = static_cast<double>(ticks_per_second);
  out.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  out.start_time_seconds = static_cast<double>(btime) + static_cast<double>(start) / ticks;
  out.virtual_bytes = vsize;
  out.resident_bytes = rss * static_cast<std::uint64_t>(page_size);
  return true;
}

std::string attempt_result(const std::string& verdict) {
  static constexpr std::array<std::string_view, 7> known{"ok", "timeout", "refused", "starttls_missing",
                                                         "certificate", "auth_rejected", "rejected"};
  for (auto k : known) {
    if (verdict == k) return verdict;
  }
  return "refused";
}

std::string render(const Snapshot& s) {
  Writer w;
  const auto& c = s.counters;
  w.family("mailferry_messages_received_total", "counter",
           "Messages accepted (250 after the data, or a sendmail hand-off), by listener.");
  by_label(w, "mailferry_messages_received_total", "listener", c.received);
  w.family("mailferry_messages_delivered_total", "counter", "Messages that left the queue delivered.");
  w.sample("mailferry_messages_delivered_total", static_cast<double>(c.delivered));
  w.family("mailferry_messages_deferred_total", "counter",
           "Delivery attempts that ended in a temporary failure.");
  w.sample("mailferry_messages_deferred_total", static_cast<double>(c.deferred));
  w.family("mailferry_messages_bounced_total", "counter", "Messages that failed permanently for a recipient.");
  w.sample("mailferry_messages_bounced_total", static_cast<double>(c.bounced));

  w.family("mailferry_queue_messages", "gauge", "Messages in the spool, by state.");
  w.sample("mailferry_queue_messages", {{"state", "queued"}}, static_cast<double>(s.queued));
  w.sample("mailferry_queue_messages", {{"state", "deferred"}}, static_cast<double>(s.deferred_now));
  w.sample("mailferry_queue_messages", {{"state", "failed"}}, static_cast<double>(s.failed));
  w.family("mailferry_queue_oldest_seconds", "gauge",
           "Age of the oldest queued or deferred message in seconds; 0 when none.");
  w.sample("mailferry_queue_oldest_seconds", s.oldest_queued_seconds);

  w.family("mailferry_upstream_attempts_total", "counter", "Connection attempts to the upstream, by port and result.");
  for (const auto& [key, v] : c.upstream_attempts) {
    w.sample("mailferry_upstream_attempts_total", {{"port", std::to_string(key.first)}, {"result", key.second}},
             static_cast<double>(v));
  }
  w.family("mailferry_upstream_port", "gauge", "The upstream port in use; 0 before the first connection.");
  w.sample("mailferry_upstream_port", s.upstream_port);

  w.family("mailferry_auth_failures_total", "counter", "Failed AUTH attempts, by listener.");
  by_label(w, "mailferry_auth_failures_total", "listener", c.auth_failures);
  w.family("mailferry_sessions_active", "gauge", "Open SMTP sessions, by listener.");
  by_label(w, "mailferry_sessions_active", "listener", s.sessions_active);
  w.family("mailferry_rejected_total", "counter", "Refused commands and connections, by reason.");
  for (std::size_t i = 0; i < smtp::rejection_kinds; ++i) {
    w.sample("mailferry_rejected_total", {{"reason", std::string(smtp::to_string(static_cast<smtp::Rejection>(i)))}},
             static_cast<double>(c.rejected[i]));
  }
  w.family("mailferry_build_info", "gauge", "The running version; value 1.");
  w.sample("mailferry_build_info", {{"version", s.version}}, 1);

  const auto& p = s.process;
  w.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
  w.sample("process_cpu_seconds_total", p.cpu_seconds);
  w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  w.sample("process_resident_memory_bytes", static_cast<double>(p.resident_bytes));
  w.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  w.sample("process_virtual_memory_bytes", static_cast<double>(p.virtual_bytes));
  w.family("process_open_fds", "gauge", "Number of open file descriptors.");
  w.sample("process_open_fds", static_cast<double>(p.open_fds));
  w.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
  w.sample("process_max_fds", static_cast<double>(p.max_fds));
  w.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
  w.sample("process_start_time_seconds", p.start_time_seconds);
  return w.take();
}

}  // namespace mailferry::metrics
