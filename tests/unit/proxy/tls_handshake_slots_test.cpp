// tls_handshake_slots with an injected clock: both limits, release by every path, reports once per
// source and period, the bounded report table, and many threads at once.
#include "proxy/inbound/tls_handshake_slots.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "config/address.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;
using clock_type = tls_handshake_slots::clock;
using slot = tls_handshake_slots::slot;

config::ip_address ip(const std::string& text) {
  return *config::parse_ip_address(text);
}

config::tls_handshakes_config limits(std::uint32_t max, std::uint32_t per_source) {
  return config::tls_handshakes_config{.max = max, .per_source = per_source};
}

const clock_type::time_point t0 = clock_type::time_point{} + 1000h;

TEST(TlsHandshakeSlots, PerSourceLimitRefusesOnlyThatSource) {
  tls_handshake_slots t;
  std::vector<slot> held;
  for (int i = 0; i < 3; ++i) {
    auto v = t.try_acquire(ip("192.0.2.1"), limits(10, 3), t0);
    ASSERT_TRUE(v.held) << i;
    EXPECT_EQ(v.refused, handshake_refusal::none);
    EXPECT_FALSE(v.report);
    held.push_back(std::move(v.held));
  }
  EXPECT_EQ(t.running_from(ip("192.0.2.1")), 3U);
  const auto fourth = t.try_acquire(ip("192.0.2.1"), limits(10, 3), t0);
  EXPECT_FALSE(fourth.held);
  EXPECT_EQ(fourth.refused, handshake_refusal::per_source);
  EXPECT_EQ(t.running(), 3U) << "a refusal takes no slot";

  auto other = t.try_acquire(ip("192.0.2.2"), limits(10, 3), t0);
  EXPECT_TRUE(other.held) << "another source still gets a slot";
  EXPECT_EQ(t.running(), 4U);
  EXPECT_EQ(t.sources(), 2U);
}

TEST(TlsHandshakeSlots, ProcessWideLimitRefusesEverySource) {
  tls_handshake_slots t;
  std::vector<slot> held;
  for (int i = 0; i < 4; ++i) {
    auto v = t.try_acquire(ip("192.0.2." + std::to_string(i + 1)), limits(4, 2), t0);
    ASSERT_TRUE(v.held) << i;
    held.push_back(std::move(v.held));
  }
  const auto v = t.try_acquire(ip("192.0.2.100"), limits(4, 2), t0);
  EXPECT_FALSE(v.held);
  EXPECT_EQ(v.refused, handshake_refusal::full);
  EXPECT_EQ(t.sources(), 4U) << "a refused source gets no count entry";
  held.pop_back();
  EXPECT_TRUE(t.try_acquire(ip("192.0.2.100"), limits(4, 2), t0).held) << "a slot given back is free again";
}

TEST(TlsHandshakeSlots, SlotsComeBackOnDestructionResetAndMoveAssignment) {
  tls_handshake_slots t;
  const auto a = ip("192.0.2.1");
  {
    auto v = t.try_acquire(a, limits(2, 2), t0);
    ASSERT_TRUE(v.held);
    slot moved(std::move(v.held));
    EXPECT_FALSE(v.held) << "a moved-from slot holds nothing";
    EXPECT_EQ(t.running(), 1U);
  }
  EXPECT_EQ(t.running(), 0U);
  EXPECT_EQ(t.sources(), 0U) << "a source with nothing running has no entry left";

  auto first = t.try_acquire(a, limits(2, 2), t0).held;
  auto second = t.try_acquire(a, limits(2, 2), t0).held;
  EXPECT_EQ(t.running(), 2U);
  first.reset();
  first.reset();  // twice is once
  EXPECT_EQ(t.running(), 1U);
  second = std::move(first);  // assigning an empty slot gives back what `second` held
  EXPECT_EQ(t.running(), 0U);
  EXPECT_EQ(t.running_from(a), 0U);
}

TEST(TlsHandshakeSlots, LimitsComeWithEachCall) {
  tls_handshake_slots t;
  const auto a = ip("192.0.2.1");
  auto one = t.try_acquire(a, limits(8, 1), t0).held;
  EXPECT_FALSE(t.try_acquire(a, limits(8, 1), t0).held);
  // A reload raised per_source: the next handshake gets in beside the running one.
  auto two = t.try_acquire(a, limits(8, 2), t0).held;
  EXPECT_TRUE(two);
  // Lowered below what runs: nothing is taken away, nothing new starts.
  const auto v = t.try_acquire(ip("192.0.2.9"), limits(1, 1), t0);
  EXPECT_EQ(v.refused, handshake_refusal::full);
  EXPECT_EQ(t.running(), 2U);
}

TEST(TlsHandshakeSlots, Ipv6CountsByItsSlash64) {
  tls_handshake_slots t;
  auto a = t.try_acquire(ip("2001:db8:1:2::1"), limits(10, 2), t0).held;
  auto b = t.try_acquire(ip("2001:db8:1:2:ffff::7"), limits(10, 2), t0).held;
  ASSERT_TRUE(a && b);
  EXPECT_EQ(t.try_acquire(ip("2001:db8:1:2:abcd::1"), limits(10, 2), t0).refused, handshake_refusal::per_source);
  EXPECT_TRUE(t.try_acquire(ip("2001:db8:1:3::1"), limits(10, 2), t0).held) << "the next /64 is another source";
  EXPECT_EQ(t.running_from(ip("2001:db8:1:2::99")), 2U);
  // IPv4-mapped addresses are folded to IPv4 by the parser, so they count as the IPv4 source.
  auto v4 = t.try_acquire(ip("::ffff:192.0.2.1"), limits(10, 2), t0).held;
  EXPECT_EQ(t.running_from(ip("192.0.2.1")), 1U);
}

TEST(TlsHandshakeSlots, ARefusedSourceIsReportedOncePerPeriodWithItsCount) {
  tls_handshake_slots t;
  const auto a = ip("192.0.2.1");
  auto held = t.try_acquire(a, limits(10, 1), t0).held;
  const auto first = t.try_acquire(a, limits(10, 1), t0);
  EXPECT_TRUE(first.report);
  EXPECT_EQ(first.refusals, 1U);
  for (int i = 1; i <= 50; ++i) {
    EXPECT_FALSE(t.try_acquire(a, limits(10, 1), t0 + i * 1s).report) << i;  // within the period: counted only
  }
  // Another source is reported on its own, whatever the first one did.
  auto other_held = t.try_acquire(ip("192.0.2.2"), limits(10, 1), t0).held;
  EXPECT_TRUE(t.try_acquire(ip("192.0.2.2"), limits(10, 1), t0 + 10s).report);
  // A refusal for the other reason (the process is full) shares the source's report.
  EXPECT_FALSE(t.try_acquire(a, limits(2, 5), t0 + 55s).report);
  const auto due = t.try_acquire(a, limits(10, 1), t0 + tls_handshake_slots::report_period);
  EXPECT_TRUE(due.report);
  EXPECT_EQ(due.refusals, 52U) << "the 51 refusals not logged and this one";
  EXPECT_FALSE(t.try_acquire(a, limits(10, 1), t0 + tls_handshake_slots::report_period + 1s).report);
  EXPECT_EQ(t.refused(), 55U);
  // Giving the slots back and flooding again does not start a new report: the period holds.
  held.reset();
  held = t.try_acquire(a, limits(10, 1), t0 + 61s).held;
  ASSERT_TRUE(held);
  EXPECT_FALSE(t.try_acquire(a, limits(10, 1), t0 + 62s).report);
}

TEST(TlsHandshakeSlots, ReportTableIsBoundedLeastRecentlyReportedFirst) {
  tls_handshake_slots t(3);
  auto blocker = t.try_acquire(ip("198.51.100.1"), limits(1, 1), t0).held;  // the process is full
  for (int i = 1; i <= 3; ++i) {
    EXPECT_TRUE(t.try_acquire(ip("192.0.2." + std::to_string(i)), limits(1, 1), t0 + (10 + i) * 1s).report);
  }
  EXPECT_EQ(t.reported_sources(), 3U);
  // .1 refused again after its period: reported and now the most recent; .2 is the oldest.
  EXPECT_TRUE(t.try_acquire(ip("192.0.2.1"), limits(1, 1), t0 + 71s).report);
  EXPECT_TRUE(t.try_acquire(ip("192.0.2.4"), limits(1, 1), t0 + 72s).report);
  EXPECT_EQ(t.reported_sources(), 3U) << "a fourth source evicts one";
  EXPECT_FALSE(t.try_acquire(ip("192.0.2.1"), limits(1, 1), t0 + 72s).report) << ".1 was kept";
  EXPECT_FALSE(t.try_acquire(ip("192.0.2.3"), limits(1, 1), t0 + 72s).report) << ".3 was kept";
  EXPECT_TRUE(t.try_acquire(ip("192.0.2.2"), limits(1, 1), t0 + 72s).report) << ".2, evicted, is reported again";

  // Ten thousand sources cost three report entries and no count entries.
  for (int i = 0; i < 10000; ++i) {
    t.try_acquire(ip("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256)), limits(1, 1), t0 + 80s);
  }
  EXPECT_EQ(t.reported_sources(), 3U);
  EXPECT_EQ(t.sources(), 1U);
}

TEST(TlsHandshakeSlots, ManyThreadsNeverExceedTheLimits) {
  tls_handshake_slots t;
  constexpr int threads = 8;
  constexpr int rounds = 2000;
  std::atomic<int> over{0};
  std::vector<std::thread> pool;
  for (int n = 0; n < threads; ++n) {
    pool.emplace_back([&t, &over, n] {
      const auto source = ip("192.0.2." + std::to_string(n % 2 + 1));
      for (int i = 0; i < rounds; ++i) {
        auto v = t.try_acquire(source, limits(6, 4), t0);
        if (v.held && (t.running() > 6 || t.running_from(source) > 4)) {
          over.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(over.load(), 0);
  EXPECT_EQ(t.running(), 0U) << "every slot came back";
  EXPECT_EQ(t.sources(), 0U);
}

}  // namespace
}  // namespace edgerelay::proxy
