// port_plan.tests.cpp: the order in which upstream ports are tried, over time.
#include <catch2/catch.hpp>

#include "mailferry/delivery/port_plan.hpp"

using namespace mailferry;
using namespace mailferry::delivery;
using config::UpstreamPort;
using config::UpstreamTls;

namespace {

const std::vector<UpstreamPort> configured{{587, UpstreamTls::starttls}, {2525, UpstreamTls::starttls},
                                           {465, UpstreamTls::implicit}};

std::vector<std::uint16_t> ports(const std::vector<UpstreamPort>& v) {
  std::vector<std::uint16_t> out;
  for (const auto& p : v) out.push_back(p.port);
  return out;
}

using V = std::vector<std::uint16_t>;

}  // namespace

TEST_CASE("with no history the configured order is used", "[delivery][port_plan]") {
  PortPlan plan(configured);
  CHECK(ports(plan.order(TimePoint{})) == V{587, 2525, 465});
  CHECK(!plan.last_good());
}

TEST_CASE("the port that worked goes first; a blocked port is not waited for twice in a row",
          "[delivery][port_plan]") {
  PortPlan plan(configured, std::chrono::hours(1));
  const TimePoint t0{};
  plan.record_failure(587, t0);   // timed out: the ISP blocks it
  CHECK(plan.record_success(2525, t0));
  CHECK(ports(plan.order(t0 + std::chrono::seconds(1))) == V{2525, 465, 587});
  CHECK(ports(plan.order(t0 + std::chrono::minutes(59))) == V{2525, 465, 587});
  CHECK(!plan.record_success(2525, t0 + std::chrono::minutes(1)));   // unchanged
}

TEST_CASE("the configured order is tried again after recheck_every", "[delivery][port_plan]") {
  PortPlan plan(configured, std::chrono::hours(1));
  const TimePoint t0{};
  plan.record_failure(587, t0);
  plan.record_success(2525, t0);
  const TimePoint later = t0 + std::chrono::hours(1);
  CHECK(plan.recheck_due(later));
  CHECK(ports(plan.order(later)) == V{587, 2525, 465});
  // 587 reopened: it is used again and goes first.
  CHECK(plan.record_success(587, later));
  CHECK(ports(plan.order(later + std::chrono::seconds(1))) == V{587, 2525, 465});
}

TEST_CASE("a last good port that fails loses its place", "[delivery][port_plan]") {
  PortPlan plan(configured);
  const TimePoint t0{};
  plan.record_success(465, t0);
  CHECK(ports(plan.order(t0)) == V{465, 587, 2525});
  plan.record_failure(465, t0);
  CHECK(!plan.last_good());
  CHECK(ports(plan.order(t0)) == V{587, 2525, 465});
}

TEST_CASE("a remembered port is restored from the spool only if still configured", "[delivery][port_plan]") {
  PortPlan plan(configured);
  plan.restore_last_good(9999, TimePoint{});
  CHECK(!plan.last_good());
  plan.restore_last_good(2525, TimePoint{});
  CHECK(plan.last_good() == std::optional<std::uint16_t>(2525));
  CHECK(ports(plan.order(TimePoint{})) == V{2525, 587, 465});
}

TEST_CASE("with no port working, the ones that failed most recently go last", "[delivery][port_plan]") {
  PortPlan plan(configured);
  const TimePoint t0{};
  plan.record_failure(587, t0);
  CHECK(ports(plan.order(t0)) == V{2525, 465, 587});
  plan.record_failure(2525, t0);
  CHECK(ports(plan.order(t0)) == V{465, 587, 2525});
}
