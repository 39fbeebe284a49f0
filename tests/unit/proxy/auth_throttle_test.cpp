// auth_throttle with an injected clock: windows, back-off, logging once, eviction, per-name delays.
#include "proxy/auth/auth_throttle.hpp"

#include <gtest/gtest.h>

#include <string>

#include "config/address.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;
using clock_type = auth_throttle::clock;

config::ip_address ip(const char* text) {
  return *config::parse_ip_address(text);
}

config::auth_failures_config policy(std::chrono::milliseconds user_delay = 2s) {
  return config::auth_failures_config{.max = 5, .window = 60s, .backoff = 30s, .user_delay = user_delay};
}

const clock_type::time_point t0 = clock_type::time_point{} + 1000h;

TEST(AuthThrottle, MaxFailuresWithinTheWindowStartTheBackoff) {
  auth_throttle t;
  const auto a = ip("192.0.2.1");
  for (unsigned i = 1; i <= 4; ++i) {
    const auto v = t.failed(a, "alice", t0 + i * 1s, policy());
    EXPECT_FALSE(v.source_throttled) << i;
    EXPECT_EQ(v.source_failures, i);
    EXPECT_FALSE(t.refuses(a, t0 + i * 1s));
  }
  const auto fifth = t.failed(a, "alice", t0 + 5s, policy());
  EXPECT_TRUE(fifth.source_throttled);
  EXPECT_EQ(fifth.source_failures, 5U);
  EXPECT_TRUE(t.refuses(a, t0 + 5s));
  EXPECT_TRUE(t.refuses(a, t0 + 34s));   // back-off: 30 s from the fifth failure
  EXPECT_FALSE(t.refuses(a, t0 + 35s));  // over
  EXPECT_FALSE(t.refuses(ip("192.0.2.2"), t0 + 5s)) << "another source is not throttled";
}

TEST(AuthThrottle, FailuresSpreadOverMoreThanTheWindowNeverThrottle) {
  auth_throttle t;
  const auto a = ip("192.0.2.1");
  // Four failures per minute for ten minutes: each window starts at its first failure.
  for (int minute = 0; minute < 10; ++minute) {
    for (int i = 0; i < 4; ++i) {
      const auto now = t0 + minute * 61s + i * 10s;
      EXPECT_FALSE(t.failed(a, "alice", now, policy()).source_throttled) << minute << ":" << i;
      EXPECT_FALSE(t.refuses(a, now));
    }
  }
  // The window is measured from the first failure: 4 at t0..t0+30s, the fifth at t0+59s throttles.
  auth_throttle u;
  for (int i = 0; i < 4; ++i) u.failed(a, "alice", t0 + i * 10s, policy());
  EXPECT_TRUE(u.failed(a, "alice", t0 + 59s, policy()).source_throttled);
}

TEST(AuthThrottle, BackoffIsReportedOncePerPeriod) {
  auth_throttle t;
  const auto a = ip("192.0.2.1");
  int reports = 0;
  for (int i = 0; i < 5; ++i) reports += t.failed(a, "alice", t0 + i * 1s, policy()).source_throttled;
  EXPECT_EQ(reports, 1);
  // Verifications admitted just before the back-off finish inside it: no second report, no extension.
  for (int i = 0; i < 3; ++i) {
    const auto v = t.failed(a, "alice", t0 + 5s, policy());
    EXPECT_FALSE(v.source_throttled);
  }
  EXPECT_FALSE(t.refuses(a, t0 + 34s + 1ms));
  // After the back-off a new period begins: five more failures, one more report.
  for (int i = 0; i < 5; ++i) reports += t.failed(a, "alice", t0 + 40s + i * 1s, policy()).source_throttled;
  EXPECT_EQ(reports, 2);
  EXPECT_TRUE(t.refuses(a, t0 + 45s));
}

TEST(AuthThrottle, SourceTableIsBoundedAndEvictsTheLeastRecentlyTouched) {
  auth_throttle t(3, 3);
  const auto a = ip("192.0.2.1");
  for (int i = 0; i < 4; ++i) t.failed(a, "alice", t0, policy());
  t.failed(ip("192.0.2.2"), "x", t0, policy());
  t.failed(ip("192.0.2.3"), "y", t0, policy());
  EXPECT_EQ(t.sources(), 3U);
  t.failed(ip("192.0.2.4"), "z", t0, policy());  // evicts a, the oldest
  EXPECT_EQ(t.sources(), 3U);
  EXPECT_EQ(t.failed(a, "alice", t0, policy()).source_failures, 1U) << "a was forgotten";

  // Many sources, many names: memory stays at the caps.
  auth_throttle big(100, 50);
  for (unsigned i = 0; i < 10000; ++i) {
    config::ip_address s{};
    s.bytes = {10, static_cast<std::uint8_t>(i >> 16), static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
    big.failed(s, "user" + std::to_string(i), t0, policy());
  }
  EXPECT_EQ(big.sources(), 100U);
  EXPECT_EQ(big.users(), 50U);
}

TEST(AuthThrottle, TouchingAnEntryKeepsItFromEviction) {
  auth_throttle t(2, 2);
  const auto a = ip("192.0.2.1");
  for (int i = 0; i < 5; ++i) t.failed(a, "alice", t0, policy());
  ASSERT_TRUE(t.refuses(a, t0));
  t.failed(ip("192.0.2.2"), "x", t0, policy());
  EXPECT_TRUE(t.refuses(a, t0 + 1s));                 // touches a
  t.failed(ip("192.0.2.3"), "y", t0 + 1s, policy());  // evicts 192.0.2.2, not a
  EXPECT_TRUE(t.refuses(a, t0 + 2s));
  EXPECT_EQ(t.failed(ip("192.0.2.2"), "x", t0 + 2s, policy()).source_failures, 1U);
}

TEST(AuthThrottle, PerUserDelayGrowsToItsCapAndNeverRefuses) {
  auth_throttle t;
  const std::chrono::milliseconds expected[] = {0ms, 0ms, 0ms, 0ms, 0ms, 250ms, 500ms, 1000ms, 2000ms, 2000ms};
  // Each failure from its own source: no source reaches its limit, but the name does.
  for (unsigned i = 0; i < 40; ++i) {
    const auto source = ip(("198.51.100." + std::to_string(i + 1)).c_str());
    const auto v = t.failed(source, "alice", t0 + i * 100ms, policy());
    EXPECT_EQ(v.reply_delay, expected[std::min<unsigned>(i, 9)]) << "failure " << i + 1;
    EXPECT_FALSE(v.source_throttled);
    EXPECT_FALSE(t.refuses(source, t0 + i * 100ms));
  }
  // The real user from anywhere is never refused for the failures against her name.
  EXPECT_FALSE(t.refuses(ip("203.0.113.9"), t0 + 5s));
  // Another name is not delayed; the delay ends with the window.
  EXPECT_EQ(t.failed(ip("203.0.113.10"), "bob", t0 + 5s, policy()).reply_delay, 0ms);
  EXPECT_EQ(t.failed(ip("203.0.113.11"), "alice", t0 + 61s, policy()).reply_delay, 0ms);
}

TEST(AuthThrottle, PerUserDelayRespectsASmallCapAndZeroTurnsItOff) {
  auth_throttle small;
  auth_throttle off;
  for (unsigned i = 0; i < 12; ++i) {
    const auto source = ip(("198.51.100." + std::to_string(i + 1)).c_str());
    const auto capped = small.failed(source, "alice", t0, policy(100ms)).reply_delay;
    EXPECT_LE(capped, 100ms);
    EXPECT_EQ(capped, i < 5 ? 0ms : 100ms) << i;
    EXPECT_EQ(off.failed(source, "alice", t0, policy(0ms)).reply_delay, 0ms);
  }
}

TEST(AuthThrottle, AnIpv6SourceCountsByItsSlash64) {
  auth_throttle t;
  for (int i = 1; i <= 5; ++i) {
    t.failed(ip(("2001:db8:1:2::" + std::to_string(i)).c_str()), "alice", t0, policy());
  }
  EXPECT_TRUE(t.refuses(ip("2001:db8:1:2:ffff::1"), t0));
  EXPECT_FALSE(t.refuses(ip("2001:db8:1:3::1"), t0));
  EXPECT_EQ(config::to_string(throttle_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"))), "2001:db8:1:2::");
  EXPECT_EQ(config::to_string(throttle_key(ip("192.0.2.77"))), "192.0.2.77");
}

}  // namespace
}  // namespace edgerelay::proxy
