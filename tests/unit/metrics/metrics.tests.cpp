// metrics.tests.cpp: the Prometheus exposition of a known snapshot, and /proc parsing.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "mailferry/metrics/metrics.hpp"

using namespace mailferry;
using namespace mailferry::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a snapshot renders every SPEC series with its labels and values", "[metrics]") {
  Snapshot s;
  s.version = "1.2.3";
  s.counters.received = {{"0.0.0.0:587", 4}, {"sendmail", 2}};
  s.counters.delivered = 5;
  s.counters.deferred = 1;
  s.counters.bounced = 1;
  s.counters.upstream_attempts = {{{587, "timeout"}, 2}, {{2525, "ok"}, 3}};
  s.counters.auth_failures = {{"0.0.0.0:587", 1}};
  s.counters.rejected[static_cast<std::size_t>(smtp::Rejection::relay_denied)] = 7;
  s.sessions_active = {{"0.0.0.0:587", 1}, {"sendmail", 0}};
  s.queued = 2;
  s.failed = 1;
  s.oldest_queued_seconds = 12.5;
  s.upstream_port = 2525;
  s.process.cpu_seconds = 0.25;
  s.process.resident_bytes = 4096;
  const std::string t = render(s);

  CHECK(has_line(t, "# TYPE mailferry_messages_received_total counter"));
  CHECK(has_line(t, R"(mailferry_messages_received_total{listener="0.0.0.0:587"} 4)"));
  CHECK(has_line(t, R"(mailferry_messages_received_total{listener="sendmail"} 2)"));
  CHECK(has_line(t, "mailferry_messages_delivered_total 5"));
  CHECK(has_line(t, "mailferry_messages_deferred_total 1"));
  CHECK(has_line(t, "mailferry_messages_bounced_total 1"));
  CHECK(has_line(t, R"(mailferry_queue_messages{state="queued"} 2)"));
  CHECK(has_line(t, R"(mailferry_queue_messages{state="deferred"} 0)"));   // always present
  CHECK(has_line(t, R"(mailferry_queue_messages{state="failed"} 1)"));
  CHECK(has_line(t, "mailferry_queue_oldest_seconds 12.5"));
  CHECK(has_line(t, R"(mailferry_upstream_attempts_total{port="587",result="timeout"} 2)"));
  CHECK(has_line(t, R"(mailferry_upstream_attempts_total{port="2525",result="ok"} 3)"));
  CHECK(has_line(t, "mailferry_upstream_port 2525"));
  CHECK(has_line(t, R"(mailferry_auth_failures_total{listener="0.0.0.0:587"} 1)"));
  CHECK(has_line(t, R"(mailferry_sessions_active{listener="0.0.0.0:587"} 1)"));
  CHECK(has_line(t, R"(mailferry_rejected_total{reason="relay_denied"} 7)"));
  CHECK(has_line(t, R"(mailferry_rejected_total{reason="protocol"} 0)"));   // every reason present
  CHECK(has_line(t, R"(mailferry_build_info{version="1.2.3"} 1)"));
  CHECK(has_line(t, "# TYPE process_cpu_seconds_total counter"));
  CHECK(has_line(t, "process_cpu_seconds_total 0.25"));
  CHECK(has_line(t, "process_resident_memory_bytes 4096"));
  // One HELP and one TYPE per family.
  std::size_t pos = 0, types = 0;
  while ((pos = t.find("# TYPE mailferry_rejected_total", pos)) != std::string::npos) ++types, ++pos;
  CHECK(types == 1);
  CHECK(t.back() == '\n');
}

TEST_CASE("label values are escaped", "[metrics]") {
  Snapshot s;
  s.version = "a\"b\\c\nd";
  CHECK(has_line(render(s), R"(mailferry_build_info{version="a\"b\\c\nd"} 1)"));
}

TEST_CASE("attempt verdicts map onto the probe's results", "[metrics]") {
  CHECK(attempt_result("ok") == "ok");
  CHECK(attempt_result("starttls_missing") == "starttls_missing");
  CHECK(attempt_result("auth_rejected") == "auth_rejected");
  CHECK(attempt_result("error") == "refused");
}

TEST_CASE("/proc/self/stat and /proc/stat give CPU, memory and start time", "[metrics]") {
  // A command name with a space and a parenthesis, as proc(5) allows.
  const std::string self =
      "1234 (mail ferry) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0 5000 123456789 300 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  const std::string system = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 99\n";
  ProcessStats p;
  REQUIRE(parse_proc_stat(self, system, 100, 4096, p));
  CHECK(p.cpu_seconds == Approx(2.0));
  CHECK(p.start_time_seconds == Approx(1700000050.0));
  CHECK(p.virtual_bytes == 123456789u);
  CHECK(p.resident_bytes == 300u * 4096u);
  ProcessStats untouched;
  CHECK_FALSE(parse_proc_stat("garbage", system, 100, 4096, untouched));
  CHECK_FALSE(parse_proc_stat(self, "cpu 1\n", 100, 4096, untouched));
  CHECK_FALSE(parse_proc_stat("1 (x) S 1 2", system, 100, 4096, untouched));
}
