// Unit tests of the SOCKS4/4a codec, including the exact bytes the 602SQL Windows client sends.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "socks/socks4_codec.hpp"
#include "tests/unit/support/split_feed.hpp"

namespace {

using edgerelay::test::bytes;
using edgerelay::test::expect_prefix_consistent;
namespace socks = edgerelay::socks;

auto request(std::span<const std::uint8_t> in) {
  return socks::parse_socks4_request(in);
}

// By value: the callers pass temporaries.
socks::parsed<socks::socks4_request> value_of(const socks::parse_result<socks::socks4_request>& r) {
  const auto* done = std::get_if<socks::parsed<socks::socks4_request>>(&r);
  EXPECT_NE(done, nullptr) << "expected a parsed request";
  return done != nullptr ? *done : socks::parsed<socks::socks4_request>{};
}

socks::protocol_error error_of(const socks::parse_result<socks::socks4_request>& r) {
  const auto* error = std::get_if<socks::protocol_error>(&r);
  EXPECT_NE(error, nullptr) << "expected a protocol error";
  return error != nullptr ? *error : socks::protocol_error{socks::reply_code::succeeded, "none"};
}

bytes socks4a(std::string_view user, std::string_view domain, std::uint16_t port = 80) {
  bytes out{0x04, 0x01, static_cast<std::uint8_t>(port >> 8U), static_cast<std::uint8_t>(port), 0, 0, 0, 1};
  out.insert(out.end(), user.begin(), user.end());
  out.push_back(0);
  out.insert(out.end(), domain.begin(), domain.end());
  out.push_back(0);
  return out;
}

TEST(Socks4Request, ParsesThe602SqlConnect) {
  const bytes in{0x04, 0x01, 0x13, 0x8A, 0xC0, 0x00, 0x02, 0x0A, 0x00};
  const auto done = value_of(request(in));
  EXPECT_EQ(done.consumed, 9U);
  EXPECT_EQ(done.value.cmd, socks::command::connect);
  EXPECT_EQ(done.value.target, (socks::target_address{socks::ipv4_bytes{192, 0, 2, 10}, 5002}));
  EXPECT_EQ(done.value.user_id, "");
  EXPECT_FALSE(done.value.socks4a);
  expect_prefix_consistent<socks::socks4_request>(request, in);
}

TEST(Socks4Request, ParsesUserId) {
  const bytes in{0x04, 0x02, 0x00, 0x15, 10, 1, 2, 3, 'f', 'r', 'e', 'd', 0x00};
  const auto done = value_of(request(in));
  EXPECT_EQ(done.consumed, in.size());
  EXPECT_EQ(done.value.cmd, socks::command::bind);
  EXPECT_EQ(done.value.target, (socks::target_address{socks::ipv4_bytes{10, 1, 2, 3}, 21}));
  EXPECT_EQ(done.value.user_id, "fred");
  expect_prefix_consistent<socks::socks4_request>(request, in);
}

TEST(Socks4Request, ZeroAddressIsPlainSocks4) {
  const bytes in{0x04, 0x01, 0x00, 0x50, 0, 0, 0, 0, 0x00};
  const auto done = value_of(request(in));
  EXPECT_EQ(done.consumed, 9U);
  EXPECT_FALSE(done.value.socks4a);
  EXPECT_EQ(done.value.target.host, (decltype(done.value.target.host){socks::ipv4_bytes{0, 0, 0, 0}}));
}

TEST(Socks4Request, ParsesSocks4aDomain) {
  const bytes in = socks4a("me", "db.example.org", 5002);
  const auto done = value_of(request(in));
  EXPECT_EQ(done.consumed, in.size());
  EXPECT_TRUE(done.value.socks4a);
  EXPECT_EQ(done.value.user_id, "me");
  EXPECT_EQ(done.value.target, (socks::target_address{std::string("db.example.org"), 5002}));
  expect_prefix_consistent<socks::socks4_request>(request, in);
}

TEST(Socks4Request, Socks4aMarkerAnyLastByte) {
  for (int last = 1; last < 256; ++last) {
    bytes in{0x04, 0x01, 0x00, 0x50, 0, 0, 0, static_cast<std::uint8_t>(last), 0x00, 'h', 0x00};
    EXPECT_EQ(value_of(request(in)).value.target, (socks::target_address{std::string("h"), 80}));
  }
}

// The longest valid host name: 253 bytes in four labels, plus the root dot.
std::string longest_name() {
  return std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(61, 'd') +
         ".";
}

TEST(Socks4Request, AcceptsLongestFields) {
  const bytes in = socks4a(std::string(255, 'u'), longest_name());
  const auto done = value_of(request(in));
  EXPECT_EQ(done.consumed, 8U + 256 + 255);
  EXPECT_EQ(done.value.user_id.size(), 255U);
  EXPECT_EQ(done.value.target, (socks::target_address{longest_name(), 80}));
  expect_prefix_consistent<socks::socks4_request>(request, in);
}

TEST(Socks4Request, RefusesInvalidSocks4aNames) {
  const std::string n253 = longest_name().substr(0, 253);
  for (const std::string& bad :
       {std::string(64, 'l') + ".example", n253 + "x", std::string(254, 'n'), std::string(255, 'n'),
        std::string("bad%name"), std::string("a b"), std::string("a\x01b"), std::string("a..b"),
        std::string("256.1.1.1"), std::string("0x"), std::string("1.2.3.4.5"), std::string("08")}) {
    SCOPED_TRACE(bad);
    const bytes in = socks4a("u", bad);
    EXPECT_EQ(error_of(request(in)),
              (socks::protocol_error{socks::reply_code::host_unreachable, "socks4a request: invalid host name"}));
    expect_prefix_consistent<socks::socks4_request>(request, in);
  }
}

TEST(Socks4Request, RefusesA64ByteLabelExactly) {
  bytes in{0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00};
  in.insert(in.end(), 64, 'l');
  in.push_back(0x00);
  ASSERT_EQ(in.size(), 9U + 64 + 1);
  EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::host_unreachable);
}

TEST(Socks4Request, NumericSocks4aDomainsBecomeIpv4Targets) {
  struct row {
    const char* domain;
    socks::ipv4_bytes v4;
  };
  const row rows[] = {{"0", {0, 0, 0, 0}},
                      {"0x0", {0, 0, 0, 0}},
                      {"0.0.0.0", {0, 0, 0, 0}},
                      {"2130706433", {127, 0, 0, 1}},
                      {"0x7f.1", {127, 0, 0, 1}},
                      {"127.1", {127, 0, 0, 1}},
                      {"0177.0.0.1", {127, 0, 0, 1}},
                      {"192.0.2.10", {192, 0, 2, 10}}};
  for (const auto& r : rows) {
    SCOPED_TRACE(r.domain);
    const bytes in = socks4a("id", r.domain, 5002);
    const auto done = value_of(request(in));
    EXPECT_EQ(done.consumed, in.size());
    EXPECT_TRUE(done.value.socks4a);
    EXPECT_EQ(done.value.user_id, "id");
    EXPECT_EQ(done.value.target, (socks::target_address{r.v4, 5002}));
    expect_prefix_consistent<socks::socks4_request>(request, in);
  }
}

TEST(Socks4Request, Ipv6TextSocks4aDomainBecomesIpv6Target) {
  socks::ipv6_bytes loopback{};
  loopback[15] = 1;
  EXPECT_EQ(value_of(request(socks4a("", "::1"))).value.target, (socks::target_address{loopback, 80}));
}

TEST(Socks4Request, RejectsOversizedUserId) {
  const bytes in = socks4a(std::string(256, 'u'), "d");
  EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::general_failure);
  expect_prefix_consistent<socks::socks4_request>(request, in);
  // Decided without waiting for a NUL that may never come.
  EXPECT_TRUE(std::holds_alternative<socks::protocol_error>(request(std::span(in).first(8 + 256))));
}

TEST(Socks4Request, RejectsOversizedDomain) {
  const bytes in = socks4a("", std::string(256, 'd'));
  error_of(request(in));
  expect_prefix_consistent<socks::socks4_request>(request, in);
}

TEST(Socks4Request, RejectsEmptySocks4aDomain) {
  const bytes in = socks4a("u", "");
  error_of(request(in));
  expect_prefix_consistent<socks::socks4_request>(request, in);
}

TEST(Socks4Request, EveryCommandByte) {
  for (int cd = 0; cd < 256; ++cd) {
    const bytes in{0x04, static_cast<std::uint8_t>(cd), 0x00, 0x50, 127, 0, 0, 1, 0x00};
    const auto r = request(in);
    if (cd == 1 || cd == 2) {
      EXPECT_EQ(static_cast<int>(value_of(r).value.cmd), cd);
    } else {
      EXPECT_EQ(error_of(r).reply, socks::reply_code::command_not_supported) << "cd " << cd;
      expect_prefix_consistent<socks::socks4_request>(request, in);
    }
  }
}

TEST(Socks4Request, RejectsWrongVersion) {
  const bytes in{0x05, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0x00};
  error_of(request(in));
}

TEST(Socks4Request, NeedMoreSaysHowMuch) {
  EXPECT_EQ(std::get<socks::need_more>(request({})).at_least, 9U);
  const bytes header{0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 'a', 'b'};
  EXPECT_EQ(std::get<socks::need_more>(request(header)).at_least, 11U);
}

TEST(Socks4Reply, IsExactlyEightBytes) {
  EXPECT_EQ(socks::encode_socks4_reply(socks::socks4_reply::granted, 5002, {192, 0, 2, 10}),
            (std::array<std::uint8_t, 8>{0x00, 0x5A, 0x13, 0x8A, 0xC0, 0x00, 0x02, 0x0A}));
  EXPECT_EQ(socks::encode_socks4_reply(socks::socks4_reply::rejected),
            (std::array<std::uint8_t, 8>{0x00, 0x5B, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(socks::encode_socks4_reply(socks::socks4_reply::no_identd)[1], 0x5C);
  EXPECT_EQ(socks::encode_socks4_reply(socks::socks4_reply::bad_user)[1], 0x5D);
}

TEST(Socks4Encode, RoundTrips) {
  const socks::target_address v4{socks::ipv4_bytes{192, 0, 2, 10}, 5002};
  EXPECT_EQ(socks::encode_socks4_request(socks::command::connect, v4, ""),
            (bytes{0x04, 0x01, 0x13, 0x8A, 0xC0, 0x00, 0x02, 0x0A, 0x00}));
  const socks::target_address name{std::string("example.com"), 443};
  const bytes wire = socks::encode_socks4_request(socks::command::bind, name, "id");
  const auto done = value_of(request(wire));
  EXPECT_EQ(done.value.target, name);
  EXPECT_EQ(done.value.cmd, socks::command::bind);
  EXPECT_EQ(done.value.user_id, "id");
}

TEST(Socks4Encode, RefusesWhatCannotBeSent) {
  const socks::target_address v4{socks::ipv4_bytes{1, 2, 3, 4}, 1};
  EXPECT_TRUE(socks::encode_socks4_request(socks::command::connect, {socks::ipv6_bytes{}, 1}, "").empty());
  EXPECT_TRUE(socks::encode_socks4_request(socks::command::udp_associate, v4, "").empty());
  EXPECT_TRUE(socks::encode_socks4_request(socks::command::connect, v4, std::string(256, 'u')).empty());
  EXPECT_TRUE(socks::encode_socks4_request(socks::command::connect, v4, std::string("a\0b", 3)).empty());
  EXPECT_TRUE(socks::encode_socks4_request(socks::command::connect, {std::string(), 1}, "").empty());
  EXPECT_TRUE(socks::encode_socks4_request(socks::command::connect, {socks::ipv4_bytes{0, 0, 0, 7}, 1}, "").empty());
}

}  // namespace
