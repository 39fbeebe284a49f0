// Duration strings: the three units, rejection of everything else, and printing.
#include <gtest/gtest.h>

#include "config/duration.hpp"

namespace edgerelay::config {
namespace {

TEST(DurationParse, AcceptsMillisecondsSecondsMinutes) {
  EXPECT_EQ(parse_duration("250ms"), duration{250});
  EXPECT_EQ(parse_duration("10s"), duration{10'000});
  EXPECT_EQ(parse_duration("5m"), duration{300'000});
  EXPECT_EQ(parse_duration("0s"), duration{0});
  EXPECT_EQ(parse_duration("600s"), duration{600'000});
}

TEST(DurationParse, RejectsEverythingElse) {
  for (const char* bad :
       {"", "10", "s", "10 s", " 10s", "10S", "1.5s", "-1s", "10h", "10sec", "10ms ", "1e3ms", "9999999999999m"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(DurationFormat, ShortestExactUnit) {
  EXPECT_EQ(format_duration(duration{250}), "250ms");
  EXPECT_EQ(format_duration(duration{10'000}), "10s");
  EXPECT_EQ(format_duration(duration{300'000}), "5m");
  EXPECT_EQ(format_duration(duration{90'000}), "90s");
  EXPECT_EQ(format_duration(duration{0}), "0ms");
}

}  // namespace
}  // namespace edgerelay::config
