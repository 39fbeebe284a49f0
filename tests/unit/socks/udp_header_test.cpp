// Unit tests of the RFC 1928 section 7 UDP header codec: exact bytes, round trips, FRAG, truncation.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "socks/udp_header.hpp"
#include "tests/unit/support/split_feed.hpp"

namespace {

using edgerelay::test::bytes;
using edgerelay::test::concat;
namespace socks = edgerelay::socks;

socks::udp_header header_of(const socks::udp_parse_result& r) {
  const auto* h = std::get_if<socks::udp_header>(&r);
  EXPECT_NE(h, nullptr) << "expected a header";
  return h != nullptr ? *h : socks::udp_header{};
}

TEST(SocksUdpHeader, ParsesIpv4Exactly) {
  const bytes dgram{0x00, 0x00, 0x00, 0x01, 8, 8, 4, 4, 0x00, 0x35, 0xAB, 0xCD};
  const auto h = header_of(socks::parse_udp_header(dgram));
  EXPECT_EQ(h.frag, 0);
  EXPECT_EQ(h.target, (socks::target_address{socks::ipv4_bytes{8, 8, 4, 4}, 53}));
  EXPECT_EQ(h.payload_offset, 10U);
}

TEST(SocksUdpHeader, EncodesIpv4Exactly) {
  EXPECT_EQ(socks::encode_udp_header({socks::ipv4_bytes{8, 8, 4, 4}, 53}),
            (bytes{0x00, 0x00, 0x00, 0x01, 8, 8, 4, 4, 0x00, 0x35}));
  EXPECT_EQ(socks::encode_udp_header({std::string("ab"), 0x0102}, 7),
            (bytes{0x00, 0x00, 0x07, 0x03, 0x02, 'a', 'b', 0x01, 0x02}));
}

TEST(SocksUdpHeader, RoundTripsEveryAddressKind) {
  socks::ipv6_bytes v6{};
  v6[0] = 0xFE;
  v6[1] = 0x80;
  v6[15] = 0x42;
  const socks::target_address targets[] = {{socks::ipv4_bytes{192, 0, 2, 1}, 9},
                                           {v6, 65535},
                                           {std::string("x"), 0},
                                           {std::string(255, 'n'), 5353}};
  const bytes payload{1, 2, 3};
  for (const auto& target : targets) {
    for (const std::uint8_t frag : {0x00, 0x01, 0x7F, 0x80, 0xFF}) {
      const bytes head = socks::encode_udp_header(target, frag);
      ASSERT_FALSE(head.empty());
      const auto h = header_of(socks::parse_udp_header(concat({head, payload})));
      EXPECT_EQ(h.target, target);
      EXPECT_EQ(h.frag, frag);
      EXPECT_EQ(h.payload_offset, head.size());
    }
  }
}

TEST(SocksUdpHeader, EmptyPayloadIsFine) {
  const bytes head = socks::encode_udp_header({socks::ipv4_bytes{1, 1, 1, 1}, 1});
  EXPECT_EQ(header_of(socks::parse_udp_header(head)).payload_offset, head.size());
}

TEST(SocksUdpHeader, EveryTruncationIsAnError) {
  const bytes head = socks::encode_udp_header({std::string("example.net"), 53});
  for (std::size_t len = 0; len < head.size(); ++len) {
    EXPECT_TRUE(std::holds_alternative<socks::protocol_error>(socks::parse_udp_header(std::span(head).first(len))))
        << "length " << len;
  }
}

TEST(SocksUdpHeader, RejectsBadAddressType) {
  for (const std::uint8_t atyp : {0x00, 0x02, 0x05, 0xFF}) {
    const bytes dgram{0x00, 0x00, 0x00, atyp, 1, 2, 3, 4, 0, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const auto r = socks::parse_udp_header(dgram);
    ASSERT_TRUE(std::holds_alternative<socks::protocol_error>(r));
    EXPECT_EQ(std::get<socks::protocol_error>(r).reply, socks::reply_code::address_type_not_supported);
  }
}

TEST(SocksUdpHeader, RejectsEmptyDomain) {
  const bytes dgram{0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x35, 'x'};
  EXPECT_TRUE(std::holds_alternative<socks::protocol_error>(socks::parse_udp_header(dgram)));
}

TEST(SocksUdpHeader, IgnoresReservedBytes) {
  const bytes dgram{0xAB, 0xCD, 0x00, 0x01, 1, 2, 3, 4, 0x00, 0x35};
  EXPECT_EQ(header_of(socks::parse_udp_header(dgram)).payload_offset, 10U);
}

TEST(SocksUdpHeader, EncoderRefusesBadDomains) {
  EXPECT_TRUE(socks::encode_udp_header({std::string(), 1}).empty());
  EXPECT_TRUE(socks::encode_udp_header({std::string(256, 'a'), 1}).empty());
}

}  // namespace
