// Unit tests of the RFC 1928 section 7 UDP header codec: exact bytes, round trips, FRAG, truncation.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

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

// The longest valid host name: 253 bytes in four labels, plus the root dot.
std::string longest_name() {
  return std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(61, 'd') +
         ".";
}

bytes domain_datagram(std::string_view domain) {
  bytes out{0x00, 0x00, 0x00, 0x03, static_cast<std::uint8_t>(domain.size())};
  out.insert(out.end(), domain.begin(), domain.end());
  const bytes port_and_payload{0x00, 0x35, 'q', 'r', 'y'};
  return concat({out, port_and_payload});
}

TEST(SocksUdpHeader, RoundTripsEveryAddressKind) {
  socks::ipv6_bytes v6{};
  v6[0] = 0xFE;
  v6[1] = 0x80;
  v6[15] = 0x42;
  const socks::target_address targets[] = {
      {socks::ipv4_bytes{192, 0, 2, 1}, 9}, {v6, 65535}, {std::string("x"), 0}, {longest_name(), 5353}};
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

TEST(SocksUdpHeader, RefusesInvalidDomains) {
  using namespace std::string_view_literals;
  const std::string n253 = longest_name().substr(0, 253);
  for (const std::string& bad : {std::string("localhost\0.corp.example"sv), std::string(64, 'l') + ".example",
                                 n253 + "x", std::string(254, 'n'), std::string("bad%name"), std::string("a\x01b"),
                                 std::string("256.1.1.1"), std::string("0x"), std::string("1.2.3.4.5")}) {
    SCOPED_TRACE(bad);
    const auto r = socks::parse_udp_header(domain_datagram(bad));
    ASSERT_TRUE(std::holds_alternative<socks::protocol_error>(r));
    EXPECT_EQ(std::get<socks::protocol_error>(r).reply, socks::reply_code::host_unreachable);
  }
}

TEST(SocksUdpHeader, RefusesNulInDomainExactly) {
  const bytes dgram{0x00, 0x00, 0x00, 0x03, 0x0B, 'l', 'o',  'c',  'a', 'l',
                    'h',  'o',  's',  't',  0x00, 'x', 0x00, 0x35, 'q'};
  EXPECT_TRUE(std::holds_alternative<socks::protocol_error>(socks::parse_udp_header(dgram)));
}

TEST(SocksUdpHeader, NumericDomainsBecomeIpv4Targets) {
  struct row {
    const char* domain;
    socks::ipv4_bytes v4;
  };
  const row rows[] = {{"0", {0, 0, 0, 0}},           {"0x0", {0, 0, 0, 0}},
                      {"0.0.0.0", {0, 0, 0, 0}},     {"2130706433", {127, 0, 0, 1}},
                      {"0x7f.1", {127, 0, 0, 1}},    {"127.1", {127, 0, 0, 1}},
                      {"0177.0.0.1", {127, 0, 0, 1}}};
  for (const auto& r : rows) {
    SCOPED_TRACE(r.domain);
    const bytes dgram = domain_datagram(r.domain);
    const auto h = header_of(socks::parse_udp_header(dgram));
    EXPECT_EQ(h.target, (socks::target_address{r.v4, 53}));
    EXPECT_EQ(h.payload_offset, dgram.size() - 3);  // "qry" is the payload, wherever the name ended
  }
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
