// Unit tests of the SOCKS5 codec: greeting, RFC 1929 message, request and replies, byte for byte.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "socks/socks5_codec.hpp"
#include "tests/unit/support/split_feed.hpp"

namespace {

using edgerelay::test::bytes;
using edgerelay::test::expect_prefix_consistent;
namespace socks = edgerelay::socks;

auto greeting(std::span<const std::uint8_t> in) {
  return socks::parse_socks5_greeting(in);
}
auto userpass(std::span<const std::uint8_t> in) {
  return socks::parse_userpass_request(in);
}
auto request(std::span<const std::uint8_t> in) {
  return socks::parse_socks5_request(in);
}

// By value: the callers pass temporaries.
template <class T>
socks::parsed<T> value_of(const socks::parse_result<T>& r) {
  const auto* done = std::get_if<socks::parsed<T>>(&r);
  EXPECT_NE(done, nullptr) << "expected a parsed message";
  return done != nullptr ? *done : socks::parsed<T>{};
}

template <class T>
socks::protocol_error error_of(const socks::parse_result<T>& r) {
  const auto* error = std::get_if<socks::protocol_error>(&r);
  EXPECT_NE(error, nullptr) << "expected a protocol error";
  return error != nullptr ? *error : socks::protocol_error{socks::reply_code::succeeded, "none"};
}

TEST(Socks5Greeting, ParsesOneMethod) {
  const bytes in{0x05, 0x01, 0x00};
  const auto done = value_of(greeting(in));
  EXPECT_EQ(done.consumed, 3U);
  EXPECT_EQ(done.value.methods, (std::vector<std::uint8_t>{0x00}));
  EXPECT_TRUE(done.value.offers(socks::method::no_auth));
  EXPECT_FALSE(done.value.offers(socks::method::username_password));
  expect_prefix_consistent<socks::socks5_greeting>(greeting, in);
}

TEST(Socks5Greeting, ParsesEveryMethodValue) {
  bytes in{0x05, 0xFF};
  for (int m = 0; m < 255; ++m) {
    in.push_back(static_cast<std::uint8_t>(m));
  }
  const auto done = value_of(greeting(in));
  EXPECT_EQ(done.consumed, 257U);
  ASSERT_EQ(done.value.methods.size(), 255U);
  EXPECT_EQ(done.value.methods[0x02], 0x02);
  EXPECT_EQ(done.value.methods[254], 254);
  expect_prefix_consistent<socks::socks5_greeting>(greeting, in);
}

TEST(Socks5Greeting, StopsAtItsEnd) {
  const bytes in{0x05, 0x02, 0x00, 0x02, 0x05, 0x01, 0x00, 0x01, 0x7F, 0x00, 0x00, 0x01, 0x00, 0x50};
  EXPECT_EQ(value_of(greeting(in)).consumed, 4U);
}

TEST(Socks5Greeting, RejectsZeroMethods) {
  const bytes in{0x05, 0x00};
  EXPECT_EQ(error_of(greeting(in)).reply, socks::reply_code::general_failure);
  expect_prefix_consistent<socks::socks5_greeting>(greeting, in);
}

TEST(Socks5Greeting, RejectsEveryOtherVersion) {
  for (int v = 0; v < 256; ++v) {
    if (v == 5) {
      continue;
    }
    const bytes in{static_cast<std::uint8_t>(v), 0x01, 0x00};
    EXPECT_TRUE(std::holds_alternative<socks::protocol_error>(greeting(in))) << "version " << v;
  }
}

TEST(Socks5Greeting, NeedMoreSaysHowMuch) {
  EXPECT_EQ(std::get<socks::need_more>(greeting({})).at_least, 2U);
  const bytes partial{0x05, 0x03, 0x00};
  EXPECT_EQ(std::get<socks::need_more>(greeting(partial)).at_least, 5U);
}

TEST(Socks5Userpass, ParsesUserAndPassword) {
  const bytes in{0x01, 0x03, 'b', 'o', 'b', 0x04, 's', 'e', 'c', 'r'};
  const auto done = value_of(userpass(in));
  EXPECT_EQ(done.consumed, in.size());
  EXPECT_EQ(done.value.user, "bob");
  EXPECT_EQ(done.value.password, "secr");
  expect_prefix_consistent<socks::userpass_request>(userpass, in);
}

TEST(Socks5Userpass, AcceptsEmptyPassword) {
  const bytes in{0x01, 0x01, 'u', 0x00};
  const auto done = value_of(userpass(in));
  EXPECT_EQ(done.consumed, 4U);
  EXPECT_EQ(done.value.user, "u");
  EXPECT_EQ(done.value.password, "");
  expect_prefix_consistent<socks::userpass_request>(userpass, in);
}

TEST(Socks5Userpass, ParsesLongestFields) {
  const std::string user(255, 'u');
  const std::string password(255, 'p');
  const bytes in = socks::encode_userpass_request(user, password);
  ASSERT_EQ(in.size(), 513U);
  const auto done = value_of(userpass(in));
  EXPECT_EQ(done.consumed, 513U);
  EXPECT_EQ(done.value.user, user);
  EXPECT_EQ(done.value.password, password);
  expect_prefix_consistent<socks::userpass_request>(userpass, in);
}

TEST(Socks5Userpass, KeepsBinaryBytes) {
  const bytes in{0x01, 0x02, 0x00, 0xFF, 0x02, 0x0A, 0x22};
  const auto done = value_of(userpass(in));
  EXPECT_EQ(done.value.user, std::string("\x00\xFF", 2));
  EXPECT_EQ(done.value.password, "\n\"");
}

TEST(Socks5Userpass, RejectsEmptyUser) {
  const bytes in{0x01, 0x00, 0x01, 'p'};
  error_of(userpass(in));
  expect_prefix_consistent<socks::userpass_request>(userpass, in);
}

TEST(Socks5Userpass, RejectsWrongVersion) {
  for (const std::uint8_t v : {0x00, 0x02, 0x05, 0xFF}) {
    const bytes in{v, 0x01, 'u', 0x01, 'p'};
    error_of(userpass(in));
  }
}

TEST(Socks5Userpass, EncoderRefusesBadFields) {
  EXPECT_TRUE(socks::encode_userpass_request("", "p").empty());
  EXPECT_TRUE(socks::encode_userpass_request(std::string(256, 'u'), "p").empty());
  EXPECT_TRUE(socks::encode_userpass_request("u", std::string(256, 'p')).empty());
  EXPECT_EQ(socks::encode_userpass_request("ab", "c"), (bytes{0x01, 0x02, 'a', 'b', 0x01, 'c'}));
}

struct request_case {
  std::string name;
  bytes wire;
  socks::command cmd;
  socks::target_address target;
};

class Socks5RequestValid : public ::testing::TestWithParam<request_case> {};

TEST_P(Socks5RequestValid, ParsesAndRoundTrips) {
  const auto& c = GetParam();
  const auto done = value_of(request(c.wire));
  EXPECT_EQ(done.consumed, c.wire.size());
  EXPECT_EQ(done.value.cmd, c.cmd);
  EXPECT_EQ(done.value.target, c.target);
  EXPECT_EQ(socks::encode_socks5_request(c.cmd, c.target), c.wire);
  expect_prefix_consistent<socks::socks5_request>(request, c.wire);
}

INSTANTIATE_TEST_SUITE_P(
    Table, Socks5RequestValid,
    ::testing::Values(
        request_case{"ConnectIpv4",
                     {0x05, 0x01, 0x00, 0x01, 0xC0, 0x00, 0x02, 0x01, 0x00, 0x50},
                     socks::command::connect,
                     {socks::ipv4_bytes{192, 0, 2, 1}, 80}},
        request_case{"BindIpv4PortMax",
                     {0x05, 0x02, 0x00, 0x01, 0x0A, 0x00, 0x00, 0x01, 0xFF, 0xFF},
                     socks::command::bind,
                     {socks::ipv4_bytes{10, 0, 0, 1}, 65535}},
        request_case{"UdpAssociatePortZero",
                     {0x05, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
                     socks::command::udp_associate,
                     {socks::ipv4_bytes{0, 0, 0, 0}, 0}},
        request_case{
            "ConnectIpv6",
            {0x05, 0x01, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01, 0xBB},
            socks::command::connect,
            {socks::ipv6_bytes{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}, 443}},
        request_case{"ConnectDomain",
                     {0x05, 0x01, 0x00, 0x03, 0x0B, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0x1F, 0x90},
                     socks::command::connect,
                     {std::string("example.com"), 8080}},
        request_case{"ConnectOneByteDomain",
                     {0x05, 0x01, 0x00, 0x03, 0x01, 'a', 0x00, 0x16},
                     socks::command::connect,
                     {std::string("a"), 22}}),
    [](const auto& param_info) { return param_info.param.name; });

// The longest valid host name: 253 bytes in four labels, plus the root dot (254 on the wire).
std::string longest_name() {
  return std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(61, 'd') +
         ".";
}

bytes domain_request(std::string_view domain, std::uint16_t port = 80, std::uint8_t cmd = 0x01) {
  bytes out{0x05, cmd, 0x00, 0x03, static_cast<std::uint8_t>(domain.size())};
  out.insert(out.end(), domain.begin(), domain.end());
  out.push_back(static_cast<std::uint8_t>(port >> 8U));
  out.push_back(static_cast<std::uint8_t>(port & 0xFFU));
  return out;
}

TEST(Socks5Request, ParsesLongestDomain) {
  const socks::target_address target{longest_name(), 443};
  const bytes in = socks::encode_socks5_request(socks::command::connect, target);
  ASSERT_EQ(in.size(), 4U + 1 + 254 + 2);
  const auto done = value_of(request(in));
  EXPECT_EQ(done.value.target, target);
  expect_prefix_consistent<socks::socks5_request>(request, in);
}

TEST(Socks5Request, EveryCommandByte) {
  for (int cmd = 0; cmd < 256; ++cmd) {
    const bytes in{0x05, static_cast<std::uint8_t>(cmd), 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50};
    const auto r = request(in);
    if (cmd >= 1 && cmd <= 3) {
      EXPECT_EQ(static_cast<int>(value_of(r).value.cmd), cmd);
    } else {
      EXPECT_EQ(error_of(r).reply, socks::reply_code::command_not_supported) << "cmd " << cmd;
      expect_prefix_consistent<socks::socks5_request>(request, in);
    }
  }
}

TEST(Socks5Request, EveryAddressTypeByte) {
  for (int atyp = 0; atyp < 256; ++atyp) {
    // Long enough for any valid ATYP: the domain case reads length 4.
    bytes in{0x05, 0x01, 0x00, static_cast<std::uint8_t>(atyp), 0x04, 'h', 'o', 's', 't', 0x00, 0x50};
    in.resize(4 + 16 + 2, 0x00);
    const auto r = request(in);
    if (atyp == 1 || atyp == 3 || atyp == 4) {
      EXPECT_TRUE(std::holds_alternative<socks::parsed<socks::socks5_request>>(r)) << "atyp " << atyp;
    } else {
      EXPECT_EQ(error_of(r).reply, socks::reply_code::address_type_not_supported) << "atyp " << atyp;
      expect_prefix_consistent<socks::socks5_request>(request, in);
    }
  }
}

TEST(Socks5Request, IgnoresReservedByte) {
  for (int rsv = 0; rsv < 256; ++rsv) {
    const bytes in{0x05, 0x01, static_cast<std::uint8_t>(rsv), 0x01, 127, 0, 0, 1, 0x00, 0x50};
    EXPECT_EQ(value_of(request(in)).consumed, 10U);
  }
}

TEST(Socks5Request, RejectsEmptyDomain) {
  const bytes in{0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50};
  EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::general_failure);
  expect_prefix_consistent<socks::socks5_request>(request, in);
}

TEST(Socks5Request, RefusesNulInDomain) {
  // A policy bypass once: it matched "*.corp.example", getaddrinfo saw "localhost".
  using namespace std::string_view_literals;
  const bytes in = domain_request("localhost\0.corp.example"sv, 15900);
  ASSERT_EQ(in, (bytes{0x05, 0x01, 0x00, 0x03, 0x17, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',  0x00,
                       '.',  'c',  'o',  'r',  'p',  '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x3E, 0x1C}));
  EXPECT_EQ(error_of(request(in)),
            (socks::protocol_error{socks::reply_code::host_unreachable, "socks5 address: invalid host name"}));
  expect_prefix_consistent<socks::socks5_request>(request, in);
}

TEST(Socks5Request, RefusesInvalidNames) {
  const std::string n253 = longest_name().substr(0, 253);
  for (const std::string& bad :
       {std::string(64, 'l') + ".example", "example." + std::string(64, 'l'), n253 + "x", std::string(254, 'n'),
        std::string("bad%name"), std::string("a b"), std::string("a/b"), std::string("u@h"), std::string("a\x01b"),
        std::string("b\xC3\xBC"
                    "cher"),
        std::string("a..b"), std::string("."), std::string("256.1.1.1"), std::string("0x"), std::string("1.2.3.4.5"),
        std::string("08"), std::string("[::1"), std::string("fe80::1%eth0")}) {
    SCOPED_TRACE(bad);
    const bytes in = domain_request(bad);
    EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::host_unreachable);
    expect_prefix_consistent<socks::socks5_request>(request, in);
  }
}

TEST(Socks5Request, RefusesInvalidNamesForUdpAssociateToo) {
  const bytes in = domain_request(std::string(64, 'l'), 0, 0x03);
  EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::host_unreachable);
}

TEST(Socks5Request, NumericDomainsBecomeIpv4Targets) {
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
                      {"10.0.0.1", {10, 0, 0, 1}}};
  for (const auto& r : rows) {
    SCOPED_TRACE(r.domain);
    for (const std::uint8_t cmd : {0x01, 0x03}) {
      const bytes in = domain_request(r.domain, 0x1F90, cmd);
      const auto done = value_of(request(in));
      EXPECT_EQ(done.consumed, in.size());
      EXPECT_EQ(done.value.target, (socks::target_address{r.v4, 8080}));
      // Encoded back it is an ATYP 1 request: the name is gone for good.
      EXPECT_EQ(socks::encode_socks5_request(done.value.cmd, done.value.target),
                (bytes{0x05, cmd, 0x00, 0x01, r.v4[0], r.v4[1], r.v4[2], r.v4[3], 0x1F, 0x90}));
      expect_prefix_consistent<socks::socks5_request>(request, in);
    }
  }
}

TEST(Socks5Request, Ipv6TextDomainsBecomeIpv6Targets) {
  socks::ipv6_bytes loopback{};
  loopback[15] = 1;
  socks::ipv6_bytes mapped_zero{};
  mapped_zero[10] = 0xFF;
  mapped_zero[11] = 0xFF;
  EXPECT_EQ(value_of(request(domain_request("::1"))).value.target, (socks::target_address{loopback, 80}));
  EXPECT_EQ(value_of(request(domain_request("[::1]"))).value.target, (socks::target_address{loopback, 80}));
  EXPECT_EQ(value_of(request(domain_request("::"))).value.target, (socks::target_address{socks::ipv6_bytes{}, 80}));
  EXPECT_EQ(value_of(request(domain_request("::ffff:0.0.0.0"))).value.target, (socks::target_address{mapped_zero, 80}));
}

TEST(Socks5Request, RejectsWrongVersion) {
  const bytes in{0x04, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50};
  EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::general_failure);
}

TEST(Socks5Request, CommandErrorWinsOverAddressError) {
  const bytes in{0x05, 0x09, 0x00, 0x09};
  EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::command_not_supported);
}

TEST(Socks5Request, DecidesBadCommandBeforeTheRest) {
  const bytes in{0x05, 0x00};
  EXPECT_EQ(error_of(request(in)).reply, socks::reply_code::command_not_supported);
}

TEST(Socks5Request, EncoderRefusesBadDomains) {
  EXPECT_TRUE(socks::encode_socks5_request(socks::command::connect, {std::string(), 80}).empty());
  EXPECT_TRUE(socks::encode_socks5_request(socks::command::connect, {std::string(256, 'x'), 80}).empty());
}

TEST(Socks5Encode, MethodSelection) {
  EXPECT_EQ(socks::encode_method_selection(socks::method::no_auth), (std::array<std::uint8_t, 2>{0x05, 0x00}));
  EXPECT_EQ(socks::encode_method_selection(socks::method::username_password),
            (std::array<std::uint8_t, 2>{0x05, 0x02}));
  EXPECT_EQ(socks::encode_method_selection(socks::method::no_acceptable), (std::array<std::uint8_t, 2>{0x05, 0xFF}));
}

TEST(Socks5Encode, AuthStatus) {
  EXPECT_EQ(socks::encode_auth_status(true), (std::array<std::uint8_t, 2>{0x01, 0x00}));
  EXPECT_EQ(socks::encode_auth_status(false), (std::array<std::uint8_t, 2>{0x01, 0x01}));
}

TEST(Socks5Encode, ReplyIpv4EveryCode) {
  for (int rep = 0; rep <= 8; ++rep) {
    const auto out =
        socks::encode_socks5_reply(static_cast<socks::reply_code>(rep), socks::ipv4_bytes{198, 51, 100, 7}, 0x1234);
    EXPECT_EQ(out, (bytes{0x05, static_cast<std::uint8_t>(rep), 0x00, 0x01, 198, 51, 100, 7, 0x12, 0x34}));
  }
}

TEST(Socks5Encode, ReplyIpv6) {
  socks::ipv6_bytes v6{};
  v6[0] = 0x20;
  v6[1] = 0x01;
  v6[15] = 0x09;
  const auto out = socks::encode_socks5_reply(socks::reply_code::succeeded, v6, 443);
  EXPECT_EQ(out, (bytes{0x05, 0x00, 0x00, 0x04, 0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x01, 0xBB}));
}

TEST(Socks5Address, NeedMoreSaysHowMuch) {
  const bytes domain_start{0x03, 0x05, 'a'};
  EXPECT_EQ(std::get<socks::need_more>(socks::parse_socks5_address(domain_start)).at_least, 9U);
  const bytes v6_start{0x04};
  EXPECT_EQ(std::get<socks::need_more>(socks::parse_socks5_address(v6_start)).at_least, 19U);
}

}  // namespace
