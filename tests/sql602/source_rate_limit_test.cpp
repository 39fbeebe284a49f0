// The UDP door's per-source buckets on their own, with a clock the test moves: the burst, the
// rate, independent sources, the bounded table and the once-per-period drop reports. The door
// itself is driven through real sockets in door_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>

#include "sql602/runtime/udp_door.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;
using clock_type = source_rate_limit::clock;

config::ip_address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  config::ip_address out;
  out.bytes[0] = a;
  out.bytes[1] = b;
  out.bytes[2] = c;
  out.bytes[3] = d;
  return out;
}

int passes(source_rate_limit& limit, const config::ip_address& source, clock_type::time_point now, int tries) {
  int n = 0;
  for (int i = 0; i < tries; ++i) {
    n += limit.take(source, now).pass ? 1 : 0;
  }
  return n;
}

TEST(SourceRateLimit, BurstThenRatePerSource) {
  source_rate_limit limit;  // 10/s, burst 20
  const auto t0 = clock_type::now();
  const auto a = v4(192, 0, 2, 1);
  EXPECT_EQ(passes(limit, a, t0, 50), 20);
  EXPECT_EQ(passes(limit, a, t0 + 100ms, 5), 1);
  EXPECT_EQ(passes(limit, a, t0 + 600ms, 10), 5);
  // A full bucket holds no more than the burst however long the source was quiet.
  EXPECT_EQ(passes(limit, a, t0 + 1h, 50), 20);
  // Another source has its own bucket.
  EXPECT_EQ(passes(limit, v4(192, 0, 2, 2), t0 + 1h, 50), 20);
}

TEST(SourceRateLimit, MappedAddressesShareTheirIpv4Bucket) {
  source_rate_limit limit;
  const auto t0 = clock_type::now();
  config::ip_address mapped;
  mapped.v6 = true;
  mapped.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  EXPECT_EQ(passes(limit, v4(192, 0, 2, 1), t0, 15), 15);
  EXPECT_EQ(passes(limit, mapped, t0, 15), 5);
  EXPECT_EQ(limit.sources(), 1U);
}

TEST(SourceRateLimit, TheTableIsBoundedAndNewSourcesShareOneBucketWhileItIsFull) {
  source_rate_limit::settings s;
  s.max_sources = 4;
  source_rate_limit limit(s);
  const auto t0 = clock_type::now();
  for (std::uint8_t i = 1; i <= 4; ++i) {
    EXPECT_TRUE(limit.take(v4(10, 0, 0, i), t0).pass);
  }
  // A spoofed flood from 200 more sources: no entry each, and 20 answers in all, not 20 each.
  int overflow_passes = 0;
  for (int i = 0; i < 200; ++i) {
    const auto r = limit.take(v4(10, 1, static_cast<std::uint8_t>(i / 256), static_cast<std::uint8_t>(i)), t0);
    EXPECT_TRUE(r.overflow);
    overflow_passes += r.pass ? 1 : 0;
  }
  EXPECT_EQ(overflow_passes, 20);
  EXPECT_EQ(limit.sources(), 4U);
  // Once the first four have been quiet for idle_expiry their entries go, and a new source gets
  // its own bucket again.
  const auto later = t0 + s.idle_expiry;
  const auto r = limit.take(v4(10, 2, 0, 1), later);
  EXPECT_TRUE(r.pass);
  EXPECT_FALSE(r.overflow);
  EXPECT_EQ(limit.sources(), 1U);
}

TEST(SourceRateLimit, DropsAreReportedOncePerPeriodWithTheirCount) {
  source_rate_limit limit;  // log_period 10 s
  const auto t0 = clock_type::now();
  const auto a = v4(192, 0, 2, 9);
  EXPECT_EQ(passes(limit, a, t0, 20), 20);
  const auto first = limit.take(a, t0);
  EXPECT_FALSE(first.pass);
  EXPECT_EQ(first.log_drops, 1U);  // the first drop is reported at once
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(limit.take(a, t0 + 1ms).log_drops, 0U);
  }
  // By then the bucket is full again: use it up to have a drop to report.
  EXPECT_EQ(passes(limit, a, t0 + 10s, 20), 20);
  const auto next = limit.take(a, t0 + 10s);
  EXPECT_FALSE(next.pass);
  EXPECT_EQ(next.log_drops, 31U);
}

}  // namespace
}  // namespace edgerelay::proxy
