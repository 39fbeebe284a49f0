// Unit tests of target_address text forms: IPv6 compression against inet_ntop, domain escaping.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdint>
#include <random>
#include <string>

#include "socks/target.hpp"

namespace {

namespace socks = edgerelay::socks;

std::string libc_ntop(const socks::ipv6_bytes& b) {
  char text[INET6_ADDRSTRLEN] = {};
  EXPECT_NE(inet_ntop(AF_INET6, b.data(), text, sizeof(text)), nullptr);
  return text;
}

TEST(SocksTargetText, Ipv4) {
  EXPECT_EQ(socks::to_string({socks::ipv4_bytes{192, 0, 2, 1}, 80}), "192.0.2.1:80");
  EXPECT_EQ(socks::to_string({socks::ipv4_bytes{0, 0, 0, 0}, 0}), "0.0.0.0:0");
  EXPECT_EQ(socks::to_string({socks::ipv4_bytes{255, 255, 255, 255}, 65535}), "255.255.255.255:65535");
  EXPECT_EQ(socks::host_string({socks::ipv4_bytes{10, 20, 30, 40}, 1}), "10.20.30.40");
}

TEST(SocksTargetText, Ipv6InBrackets) {
  socks::ipv6_bytes b{0x20, 0x01, 0x0d, 0xb8};
  b[15] = 1;
  EXPECT_EQ(socks::to_string({b, 443}), "[2001:db8::1]:443");
  EXPECT_EQ(socks::host_string({b, 443}), "2001:db8::1");
  EXPECT_EQ(socks::to_string({socks::ipv6_bytes{}, 0}), "[::]:0");
}

TEST(SocksTargetText, Ipv6MatchesInetNtopOnPatterns) {
  // Every pattern of zero and non-zero groups, each non-zero group a different width.
  for (unsigned mask = 0; mask < 256; ++mask) {
    socks::ipv6_bytes b{};
    for (unsigned g = 0; g < 8; ++g) {
      if ((mask >> g) & 1U) {
        const unsigned value = (g % 4 == 0) ? 0xFFFFU : (g % 4 == 1) ? 0x1U : (g % 4 == 2) ? 0xABCU : 0x20U;
        b[2 * g] = static_cast<std::uint8_t>(value >> 8U);
        b[2 * g + 1] = static_cast<std::uint8_t>(value & 0xFFU);
      }
    }
    EXPECT_EQ(socks::host_string({b, 0}), libc_ntop(b)) << "mask " << mask;
  }
}

TEST(SocksTargetText, Ipv6MatchesInetNtopOnSpecialForms) {
  const char* const samples[] = {"::",
                                 "::1",
                                 "::2",
                                 "::1.2.3.4",
                                 "::ffff:1.2.3.4",
                                 "::ffff:0:0",
                                 "1:0:0:2:0:0:0:3",
                                 "1:0:2:0:3:0:4:0",
                                 "fe80::1:2",
                                 "::0.1.0.0",
                                 "0:0:1::",
                                 "1::",
                                 "::ffff:0:1.2.3.4",
                                 "64:ff9b::1.2.3.4"};
  for (const char* s : samples) {
    socks::ipv6_bytes b{};
    ASSERT_EQ(inet_pton(AF_INET6, s, b.data()), 1) << s;
    EXPECT_EQ(socks::host_string({b, 0}), libc_ntop(b)) << s;
  }
}

TEST(SocksTargetText, Ipv6MatchesInetNtopOnRandomAddresses) {
  std::mt19937 rng(1928);
  for (int i = 0; i < 20000; ++i) {
    socks::ipv6_bytes b{};
    for (auto& byte : b) {
      // Mostly zeros, so runs of zero groups of every length show up.
      byte = (rng() % 3 == 0) ? static_cast<std::uint8_t>(rng()) : 0;
    }
    ASSERT_EQ(socks::host_string({b, 0}), libc_ntop(b));
  }
}

TEST(SocksTargetText, DomainPlain) {
  EXPECT_EQ(socks::to_string({std::string("example.com"), 8080}), "example.com:8080");
  EXPECT_EQ(socks::host_string({std::string("a-b_c.example"), 1}), "a-b_c.example");
}

TEST(SocksTargetText, DomainEscapesUnsafeBytes) {
  const std::string name("a\"b\\c\nd\x7F\x00\xFF e", 12);
  EXPECT_EQ(socks::to_string({name, 1}), "a\\x22b\\x5Cc\\x0Ad\\x7F\\x00\\xFF e:1");
}

TEST(SocksTargetText, DomainEveryByte) {
  for (int c = 0; c < 256; ++c) {
    const std::string text = socks::host_string({std::string(1, static_cast<char>(c)), 0});
    const bool plain = c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
    if (plain) {
      EXPECT_EQ(text, std::string(1, static_cast<char>(c)));
    } else {
      char expected[8];
      std::snprintf(expected, sizeof(expected), "\\x%02X", c);
      EXPECT_EQ(text, expected) << "byte " << c;
    }
  }
}

}  // namespace
