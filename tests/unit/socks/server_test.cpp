// Unit tests of socks_server: whole handshakes as a driver sees them, at every split, byte for byte.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "socks/server.hpp"
#include "tests/unit/support/split_feed.hpp"

namespace {

using edgerelay::test::bytes;
using edgerelay::test::concat;
using edgerelay::test::drive_whole;
using edgerelay::test::driver_script;
using edgerelay::test::expect_same_at_every_split;
using edgerelay::test::expect_truncations_wait;
using edgerelay::test::transcript;
namespace socks = edgerelay::socks;

const bytes greet_noauth{0x05, 0x01, 0x00};
const bytes greet_password{0x05, 0x01, 0x02};
const bytes greet_both{0x05, 0x02, 0x00, 0x02};
const bytes auth_bob{0x01, 0x03, 'b', 'o', 'b', 0x02, 'p', 'w'};
const bytes connect_v4{0x05, 0x01, 0x00, 0x01, 0xC0, 0x00, 0x02, 0x01, 0x00, 0x50};
const bytes connect_name{0x05, 0x01, 0x00, 0x03, 0x04, 'h', 'o', 's', 't', 0x01, 0xBB};
const bytes payload{'G', 'E', 'T', ' ', '/', 0x00, 0x05, 0x01};
const bytes sql602{0x04, 0x01, 0x13, 0x8A, 0xC0, 0x00, 0x02, 0x0A, 0x00};

socks::server_options password_options() {
  socks::server_options o;
  o.require_password = true;
  return o;
}

driver_script bound_at(socks::ipv4_bytes addr, std::uint16_t port,
                       socks::reply_code code = socks::reply_code::succeeded) {
  driver_script s;
  s.connect_code = code;
  s.bound = socks::bound_address{addr, port};
  return s;
}

// Runs every check of split_feed.hpp on one input and returns the transcript.
transcript grind(const socks::server_options& options, const driver_script& script, const bytes& input) {
  expect_truncations_wait(options, script, input);
  return expect_same_at_every_split(options, script, input);
}

TEST(Socks5Server, NoAuthConnect) {
  const auto t = grind({}, bound_at({10, 0, 0, 5}, 40000), concat({greet_noauth, connect_v4}));
  EXPECT_EQ(t.events, (std::vector<std::string>{"send 05 00", "connect cmd=1 target=192.0.2.1:80 user=",
                                                "send 05 00 00 01 0a 00 00 05 9c 40"}));
  EXPECT_EQ(t.end, "established");
  EXPECT_TRUE(t.tunnel.empty());
}

TEST(Socks5Server, PipelinedGreetingRequestPayload) {
  const auto t = grind({}, driver_script{}, concat({greet_noauth, connect_name, payload}));
  EXPECT_EQ(t.events, (std::vector<std::string>{
                          "send 05 00", "connect cmd=1 target=host:443 user=", "send 05 00 00 01 00 00 00 00 00 00"}));
  EXPECT_EQ(t.end, "established");
  EXPECT_EQ(t.tunnel, payload);
}

TEST(Socks5Server, LeftoverIsExactlyWhatFollowedTheRequest) {
  socks::socks_server server({});
  const bytes input = concat({greet_noauth, connect_v4, payload});
  auto step = server.feed(input);
  ASSERT_TRUE(std::holds_alternative<socks::step::send>(step));
  EXPECT_TRUE(server.leftover().empty()) << "leftover before establishment must be empty";
  step = server.feed({});
  ASSERT_TRUE(std::holds_alternative<socks::step::connect>(step));
  EXPECT_TRUE(server.leftover().empty());
  step = server.on_connect(socks::reply_code::succeeded, {});
  ASSERT_TRUE(std::holds_alternative<socks::step::send>(step));
  EXPECT_FALSE(std::get<socks::step::send>(step).close_after);
  EXPECT_TRUE(server.established());
  EXPECT_EQ(server.protocol_version(), socks::version::v5);
  const auto rest = server.leftover();
  EXPECT_EQ(bytes(rest.begin(), rest.end()), payload);
}

TEST(Socks5Server, PasswordPipelinedInOneFeed) {
  const auto t = grind(password_options(), driver_script{}, concat({greet_password, auth_bob, connect_v4, payload}));
  EXPECT_EQ(t.events, (std::vector<std::string>{"send 05 02", "authenticate user=bob password=pw", "send 01 00",
                                                "connect cmd=1 target=192.0.2.1:80 user=bob",
                                                "send 05 00 00 01 00 00 00 00 00 00"}));
  EXPECT_EQ(t.end, "established");
  EXPECT_EQ(t.tunnel, payload);
}

TEST(Socks5Server, PasswordRejected) {
  driver_script script;
  script.auth_ok = false;
  const auto t = grind(password_options(), script, concat({greet_password, auth_bob, connect_v4}));
  EXPECT_EQ(t.events,
            (std::vector<std::string>{"send 05 02", "authenticate user=bob password=pw", "send+close 01 01"}));
  EXPECT_EQ(t.end, "closed");
}

TEST(Socks5Server, PrefersPasswordWhenRequired) {
  const auto t = grind(password_options(), driver_script{}, concat({greet_both, auth_bob, connect_v4}));
  EXPECT_EQ(t.events.at(0), "send 05 02");
  EXPECT_EQ(t.end, "established");
}

TEST(Socks5Server, PrefersNoAuthWhenAllowed) {
  const auto t = grind({}, driver_script{}, concat({greet_both, connect_v4}));
  EXPECT_EQ(t.events.at(0), "send 05 00");
  EXPECT_EQ(t.events.at(1), "connect cmd=1 target=192.0.2.1:80 user=");
}

TEST(Socks5Server, NoAcceptableMethodWhenPasswordMissing) {
  const auto t = grind(password_options(), driver_script{}, concat({greet_noauth, connect_v4}));
  EXPECT_EQ(t.events, (std::vector<std::string>{"send+close 05 ff"}));
  EXPECT_EQ(t.end, "closed");
}

TEST(Socks5Server, NoAcceptableMethodWhenOnlyPasswordOffered) {
  const auto t = grind({}, driver_script{}, concat({greet_password, auth_bob}));
  EXPECT_EQ(t.events, (std::vector<std::string>{"send+close 05 ff"}));
}

TEST(Socks5Server, NoAcceptableMethodForUnknownMethods) {
  const auto t = grind({}, driver_script{}, bytes{0x05, 0x03, 0x01, 0x03, 0x80});
  EXPECT_EQ(t.events, (std::vector<std::string>{"send+close 05 ff"}));
}

TEST(Socks5Server, RejectsZeroMethods) {
  const auto t = grind({}, driver_script{}, bytes{0x05, 0x00});
  EXPECT_EQ(t.events, (std::vector<std::string>{"send+close 05 ff"}));
}

TEST(Socks5Server, MalformedUserpassAnsweredAsFailure) {
  const auto t = grind(password_options(), driver_script{}, concat({greet_password, bytes{0x01, 0x00, 0x01, 'p'}}));
  EXPECT_EQ(t.events, (std::vector<std::string>{"send 05 02", "send+close 01 01"}));
}

TEST(Socks5Server, WrongUserpassVersionFails) {
  const auto t =
      grind(password_options(), driver_script{}, concat({greet_password, bytes{0x05, 0x01, 'u', 0x01, 'p'}}));
  EXPECT_EQ(t.events.at(0), "send 05 02");
  EXPECT_EQ(t.end, "failed");
}

TEST(Socks5Server, EveryConnectOutcome) {
  for (int rep = 0; rep <= 8; ++rep) {
    SCOPED_TRACE("rep " + std::to_string(rep));
    const auto code = static_cast<socks::reply_code>(rep);
    const auto t = drive_whole({}, bound_at({1, 2, 3, 4}, 0x0506, code), concat({greet_noauth, connect_v4, payload}));
    ASSERT_EQ(t.events.size(), 3U);
    const std::string reply =
        edgerelay::test::hex(bytes{0x05, static_cast<std::uint8_t>(rep), 0x00, 0x01, 1, 2, 3, 4, 0x05, 0x06});
    if (rep == 0) {
      EXPECT_EQ(t.events[2], "send " + reply);
      EXPECT_EQ(t.end, "established");
    } else {
      EXPECT_EQ(t.events[2], "send+close " + reply);
      EXPECT_EQ(t.end, "closed");
    }
  }
}

TEST(Socks5Server, ReplyWithIpv6Bound) {
  driver_script script;
  socks::ipv6_bytes v6{};
  v6[15] = 1;
  script.bound = socks::bound_address{v6, 8080};
  const auto t = drive_whole({}, script, concat({greet_noauth, connect_v4}));
  EXPECT_EQ(t.events.at(2), "send 05 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 1f 90");
}

TEST(Socks5Server, BindAndUdpAssociateReachTheDriver) {
  const bytes bind{0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
  const bytes udp{0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(grind({}, driver_script{}, concat({greet_noauth, bind})).events.at(1),
            "connect cmd=2 target=0.0.0.0:0 user=");
  EXPECT_EQ(grind({}, driver_script{}, concat({greet_noauth, udp})).events.at(1),
            "connect cmd=3 target=0.0.0.0:0 user=");
}

// RFC 1928 section 4: a BIND gets two replies, the address the gateway listens on, then the
// peer that connected; bytes the client pipelined behind the request belong to the tunnel.
TEST(Socks5Server, BindGetsTwoReplies) {
  const bytes bind{0x05, 0x02, 0x00, 0x01, 127, 0, 0, 2, 0x00, 0x00};
  driver_script script = bound_at({127, 0, 0, 2}, 20);
  script.bind_listening = socks::bound_address{socks::ipv4_bytes{127, 0, 0, 1}, 40001};
  const auto t = grind({}, script, concat({greet_noauth, bind, payload}));
  EXPECT_EQ(t.events, (std::vector<std::string>{
                          "send 05 00", "connect cmd=2 target=127.0.0.2:0 user=", "send 05 00 00 01 7f 00 00 01 9c 41",
                          "send 05 00 00 01 7f 00 00 02 00 14"}));
  EXPECT_EQ(t.end, "established");
  EXPECT_EQ(t.tunnel, payload);
}

TEST(Socks5Server, BindSecondReplyCanRefuse) {
  const bytes bind{0x05, 0x02, 0x00, 0x03, 0x04, 'h', 'o', 's', 't', 0x00, 0x15};
  driver_script script = bound_at({0, 0, 0, 0}, 0, socks::reply_code::ttl_expired);
  socks::ipv6_bytes v6{};
  v6[15] = 1;
  script.bind_listening = socks::bound_address{v6, 0x1234};
  const auto t = grind({}, script, concat({greet_noauth, bind}));
  EXPECT_EQ(t.events,
            (std::vector<std::string>{"send 05 00", "connect cmd=2 target=host:21 user=",
                                      "send 05 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 12 34",
                                      "send+close 05 06 00 01 00 00 00 00 00 00"}));
  EXPECT_EQ(t.end, "closed");
}

TEST(Socks5Server, BindListeningOnlyAnswersABind) {
  socks::socks_server connect({});
  (void)connect.feed(greet_noauth);
  ASSERT_TRUE(std::holds_alternative<socks::step::connect>(connect.feed(connect_v4)));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(connect.on_bind_listening({})));

  socks::socks_server twice({});
  (void)twice.feed(greet_noauth);
  ASSERT_TRUE(
      std::holds_alternative<socks::step::connect>(twice.feed(bytes{0x05, 0x02, 0x00, 0x01, 1, 2, 3, 4, 0, 0})));
  EXPECT_TRUE(std::holds_alternative<socks::step::send>(twice.on_bind_listening({})));
  EXPECT_FALSE(twice.established());
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(twice.on_bind_listening({})));

  socks::socks_server v4({});
  ASSERT_TRUE(std::holds_alternative<socks::step::connect>(v4.feed(bytes{0x04, 0x02, 0x00, 0x15, 10, 0, 0, 1, 0x00})));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(v4.on_bind_listening({})));
}

TEST(Socks5Server, NoFeedWhileAwaitingThePeer) {
  socks::socks_server server({});
  (void)server.feed(greet_noauth);
  ASSERT_TRUE(
      std::holds_alternative<socks::step::connect>(server.feed(bytes{0x05, 0x02, 0x00, 0x01, 1, 2, 3, 4, 0, 0})));
  ASSERT_TRUE(std::holds_alternative<socks::step::send>(server.on_bind_listening({})));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.feed(payload)));
}

struct malformed_case {
  std::string name;
  bytes request;
  std::string reply;
};

class Socks5ServerMalformed : public ::testing::TestWithParam<malformed_case> {};

TEST_P(Socks5ServerMalformed, RepliesAndCloses) {
  const auto& c = GetParam();
  const auto t = grind({}, driver_script{}, concat({greet_noauth, c.request}));
  EXPECT_EQ(t.events, (std::vector<std::string>{"send 05 00", "send+close " + c.reply}));
  EXPECT_EQ(t.end, "closed");
}

INSTANTIATE_TEST_SUITE_P(
    Table, Socks5ServerMalformed,
    ::testing::Values(
        malformed_case{"CommandZero", {0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, "05 07 00 01 00 00 00 00 00 00"},
        malformed_case{"CommandFour", {0x05, 0x04, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, "05 07 00 01 00 00 00 00 00 00"},
        malformed_case{"CommandMax", {0x05, 0xFF}, "05 07 00 01 00 00 00 00 00 00"},
        malformed_case{"AddressTypeZero", {0x05, 0x01, 0x00, 0x00, 1, 2, 3, 4, 0, 80}, "05 08 00 01 00 00 00 00 00 00"},
        malformed_case{"AddressTypeTwo", {0x05, 0x01, 0x00, 0x02}, "05 08 00 01 00 00 00 00 00 00"},
        malformed_case{"AddressTypeFive", {0x05, 0x01, 0x00, 0x05}, "05 08 00 01 00 00 00 00 00 00"},
        malformed_case{"EmptyDomain", {0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50}, "05 01 00 01 00 00 00 00 00 00"},
        // Issue 13 A.2: a domain that is not a host name is host unreachable (wire.hpp), never dialled.
        malformed_case{"NulInDomain",
                       {0x05, 0x01, 0x00, 0x03, 0x17, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',  0x00,
                        '.',  'c',  'o',  'r',  'p',  '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x3E, 0x1C},
                       "05 04 00 01 00 00 00 00 00 00"},
        malformed_case{"PercentInDomain",
                       {0x05, 0x01, 0x00, 0x03, 0x03, 'a', '%', 'b', 0x00, 0x50},
                       "05 04 00 01 00 00 00 00 00 00"},
        malformed_case{"NotAnInetAtonNumber",
                       {0x05, 0x01, 0x00, 0x03, 0x09, '2', '5', '6', '.', '1', '.', '1', '.', '1', 0x00, 0x50},
                       "05 04 00 01 00 00 00 00 00 00"},
        malformed_case{"UdpAssociateNulInDomain",
                       {0x05, 0x03, 0x00, 0x03, 0x03, 'a', 0x00, 'b', 0x00, 0x00},
                       "05 04 00 01 00 00 00 00 00 00"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(Socks5Server, NumericDomainReachesTheDriverAsAnAddress) {
  for (const auto& [domain, text] : std::vector<std::pair<std::string, std::string>>{{"0", "0.0.0.0"},
                                                                                     {"0x0", "0.0.0.0"},
                                                                                     {"0.0.0.0", "0.0.0.0"},
                                                                                     {"2130706433", "127.0.0.1"},
                                                                                     {"0x7f.1", "127.0.0.1"},
                                                                                     {"127.1", "127.0.0.1"},
                                                                                     {"0177.0.0.1", "127.0.0.1"}}) {
    SCOPED_TRACE(domain);
    bytes request{0x05, 0x01, 0x00, 0x03, static_cast<std::uint8_t>(domain.size())};
    request.insert(request.end(), domain.begin(), domain.end());
    request.insert(request.end(), {0x3E, 0x1C});
    const auto t = grind({}, bound_at({10, 0, 0, 5}, 40000), concat({greet_noauth, request}));
    EXPECT_EQ(t.events, (std::vector<std::string>{"send 05 00", "connect cmd=1 target=" + text + ":15900 user=",
                                                  "send 05 00 00 01 0a 00 00 05 9c 40"}));
  }
}

TEST(Socks5Server, WrongRequestVersionFails) {
  const auto t = grind({}, driver_script{}, concat({greet_noauth, bytes{0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4, 0}}));
  EXPECT_EQ(t.events.at(0), "send 05 00");
  EXPECT_EQ(t.end, "failed");
}

TEST(Socks4Server, The602SqlConnectGetsOneEightByteReply) {
  socks::socks_server server({});
  auto step = server.feed(sql602);
  const auto* connect = std::get_if<socks::step::connect>(&step);
  ASSERT_NE(connect, nullptr);
  EXPECT_EQ(connect->cmd, socks::command::connect);
  EXPECT_EQ(connect->target, (socks::target_address{socks::ipv4_bytes{192, 0, 2, 10}, 5002}));
  EXPECT_EQ(connect->user, "");
  EXPECT_EQ(server.protocol_version(), socks::version::v4);
  step = server.on_connect(socks::reply_code::succeeded, {socks::ipv4_bytes{192, 0, 2, 10}, 5002});
  const auto* send = std::get_if<socks::step::send>(&step);
  ASSERT_NE(send, nullptr);
  EXPECT_EQ(send->bytes, (bytes{0x00, 0x5A, 0x13, 0x8A, 0xC0, 0x00, 0x02, 0x0A}));
  EXPECT_FALSE(send->close_after);
  EXPECT_TRUE(server.established());
  EXPECT_TRUE(server.leftover().empty());
}

TEST(Socks4Server, The602SqlConnectAtEverySplit) {
  const auto t = grind({}, bound_at({192, 0, 2, 10}, 5002), sql602);
  EXPECT_EQ(t.events,
            (std::vector<std::string>{"connect cmd=1 target=192.0.2.10:5002 user=", "send 00 5a 13 8a c0 00 02 0a"}));
  EXPECT_EQ(t.end, "established");
}

TEST(Socks4Server, PipelinedPayloadKept) {
  const auto t = grind({}, driver_script{}, concat({sql602, payload}));
  EXPECT_EQ(t.events.at(1), "send 00 5a 00 00 00 00 00 00");
  EXPECT_EQ(t.tunnel, payload);
}

TEST(Socks4Server, Socks4aDomain) {
  const bytes in{0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 'u', 0x00, 'e', 'x', '.', 'o', 'r', 'g', 0x00};
  const auto t = grind({}, driver_script{}, in);
  EXPECT_EQ(t.events.at(0), "connect cmd=1 target=ex.org:80 user=u");
}

TEST(Socks4Server, InvalidSocks4aNameGets5B) {
  bytes in{0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 'u', 0x00};
  in.insert(in.end(), 64, 'l');
  in.push_back(0x00);
  const auto t = grind({}, driver_script{}, in);
  EXPECT_EQ(t.events, (std::vector<std::string>{"send+close 00 5b 00 00 00 00 00 00"}));
  EXPECT_EQ(t.end, "closed");
  const bytes percent{0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0x00, 'b', 'a', 'd', '%', 'n', 'a', 'm', 'e', 0x00};
  EXPECT_EQ(grind({}, driver_script{}, percent).events,
            (std::vector<std::string>{"send+close 00 5b 00 00 00 00 00 00"}));
}

TEST(Socks4Server, NumericSocks4aNameReachesTheDriverAsAnAddress) {
  const bytes in{0x04, 0x01, 0x3E, 0x1C, 0, 0, 0, 1, 'u', 0x00, '0', 'x', '7', 'f', '.', '1', 0x00};
  const auto t = grind({}, driver_script{}, in);
  EXPECT_EQ(t.events.at(0), "connect cmd=1 target=127.0.0.1:15900 user=u");
  const bytes zero{0x04, 0x01, 0x3E, 0x1C, 0, 0, 0, 1, 0x00, '0', 0x00};
  EXPECT_EQ(grind({}, driver_script{}, zero).events.at(0), "connect cmd=1 target=0.0.0.0:15900 user=");
}

TEST(Socks4Server, EveryFailureIsRejected) {
  for (int rep = 1; rep <= 8; ++rep) {
    SCOPED_TRACE("rep " + std::to_string(rep));
    const auto t = drive_whole({}, bound_at({1, 2, 3, 4}, 99, static_cast<socks::reply_code>(rep)), sql602);
    EXPECT_EQ(t.events.at(1), "send+close 00 5b 00 63 01 02 03 04");
    EXPECT_EQ(t.end, "closed");
  }
}

TEST(Socks4Server, Ipv6BoundGivesZeros) {
  driver_script script;
  script.bound = socks::bound_address{socks::ipv6_bytes{0x20, 0x01}, 443};
  EXPECT_EQ(drive_whole({}, script, sql602).events.at(1), "send 00 5a 00 00 00 00 00 00");
}

TEST(Socks4Server, BindReachesTheDriver) {
  const bytes bind{0x04, 0x02, 0x00, 0x15, 10, 0, 0, 1, 'x', 0x00};
  const auto t = grind({}, bound_at({0, 0, 0, 0}, 0, socks::reply_code::command_not_supported), bind);
  EXPECT_EQ(t.events, (std::vector<std::string>{"connect cmd=2 target=10.0.0.1:21 user=x",
                                                "send+close 00 5b 00 00 00 00 00 00"}));
}

TEST(Socks4Server, PasswordRequiredGives5D) {
  const auto t = grind(password_options(), driver_script{}, sql602);
  EXPECT_EQ(t.events, (std::vector<std::string>{"send+close 00 5d 00 00 00 00 00 00"}));
  EXPECT_EQ(t.end, "closed");
}

TEST(Socks4Server, UnknownCommandGets5B) {
  const auto t = grind({}, driver_script{}, bytes{0x04, 0x03, 0x00, 0x50, 1, 2, 3, 4, 0x00});
  EXPECT_EQ(t.events, (std::vector<std::string>{"send+close 00 5b 00 00 00 00 00 00"}));
}

TEST(Socks4Server, OversizedUserIdCloses) {
  bytes in{0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4};
  in.resize(in.size() + 300, 'u');
  const auto t = grind({}, driver_script{}, in);
  EXPECT_EQ(t.events.size(), 1U);
  EXPECT_EQ(t.end, "failed");
}

TEST(Socks4Server, OversizedDomainCloses) {
  bytes in{0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0x00};
  in.resize(in.size() + 256, 'd');
  in.push_back(0);
  EXPECT_EQ(grind({}, driver_script{}, in).end, "failed");
}

TEST(SocksServerVersion, UnknownFirstByteFails) {
  for (int first = 0; first < 256; ++first) {
    if (first == 4 || first == 5) {
      continue;
    }
    socks::socks_server server({});
    const bytes in{static_cast<std::uint8_t>(first), 0x01, 0x00};
    EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.feed(in))) << "first byte " << first;
  }
}

TEST(SocksServerVersion, DisabledVersionsFail) {
  socks::server_options only5;
  only5.accept_socks4 = false;
  EXPECT_EQ(drive_whole(only5, driver_script{}, sql602).end, "failed");
  EXPECT_EQ(drive_whole(only5, driver_script{}, concat({greet_noauth, connect_v4})).end, "established");
  socks::server_options only4;
  only4.accept_socks5 = false;
  EXPECT_EQ(drive_whole(only4, driver_script{}, concat({greet_noauth, connect_v4})).end, "failed");
  EXPECT_EQ(drive_whole(only4, driver_script{}, sql602).end, "established");
}

TEST(SocksServerVersion, EmptyFeedWaits) {
  socks::socks_server server({});
  EXPECT_TRUE(std::holds_alternative<socks::step::need_more>(server.feed({})));
  EXPECT_EQ(server.protocol_version(), socks::version::unknown);
}

TEST(SocksServerState, OnAuthAtStartFails) {
  socks::socks_server server({});
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.on_auth(true)));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.feed(greet_noauth)));
}

TEST(SocksServerState, OnConnectAtStartFails) {
  socks::socks_server server({});
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.on_connect(socks::reply_code::succeeded, {})));
}

TEST(SocksServerState, OnAuthWithoutPasswordMethodFails) {
  socks::socks_server server({});
  ASSERT_TRUE(std::holds_alternative<socks::step::send>(server.feed(greet_noauth)));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.on_auth(true)));
}

TEST(SocksServerState, FeedWhileAuthenticatingFails) {
  socks::socks_server server(password_options());
  ASSERT_TRUE(std::holds_alternative<socks::step::send>(server.feed(greet_password)));
  ASSERT_TRUE(std::holds_alternative<socks::step::authenticate>(server.feed(auth_bob)));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.feed({})));
}

TEST(SocksServerState, SecondOnConnectFails) {
  socks::socks_server server({});
  ASSERT_TRUE(std::holds_alternative<socks::step::connect>(server.feed(sql602)));
  ASSERT_TRUE(std::holds_alternative<socks::step::send>(server.on_connect(socks::reply_code::succeeded, {})));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.on_connect(socks::reply_code::succeeded, {})));
}

TEST(SocksServerState, FeedAfterEstablishedFails) {
  socks::socks_server server({});
  ASSERT_TRUE(std::holds_alternative<socks::step::connect>(server.feed(sql602)));
  ASSERT_TRUE(std::holds_alternative<socks::step::send>(server.on_connect(socks::reply_code::succeeded, {})));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.feed(payload)));
  EXPECT_FALSE(server.established());
}

TEST(SocksServerState, EverythingFailsAfterClose) {
  socks::socks_server server(password_options());
  const auto step = server.feed(greet_noauth);
  ASSERT_TRUE(std::get<socks::step::send>(step).close_after);
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.feed(connect_v4)));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.on_auth(true)));
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.on_connect(socks::reply_code::succeeded, {})));
  EXPECT_TRUE(server.leftover().empty());
}

TEST(SocksServerLimits, TooMuchInputFails) {
  socks::server_options options;
  options.max_buffered = 64;
  socks::socks_server server(options);
  const bytes start{0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4};
  ASSERT_TRUE(std::holds_alternative<socks::step::need_more>(server.feed(start)));
  const bytes filler(57, 'u');
  EXPECT_TRUE(std::holds_alternative<socks::step::failed>(server.feed(filler)));
}

TEST(SocksServerLimits, InputUpToTheCapIsKept) {
  socks::server_options options;
  options.max_buffered = 64;
  bytes in = concat({sql602, bytes(55, 'x')});
  ASSERT_EQ(in.size(), 64U);
  const auto t = drive_whole(options, driver_script{}, in);
  EXPECT_EQ(t.end, "established");
  EXPECT_EQ(t.tunnel, bytes(55, 'x'));
}

TEST(SocksServerLimits, DefaultCapAllowsABigPipelinedRead) {
  const bytes big(16 * 1024, 'z');
  const auto t = drive_whole({}, driver_script{}, concat({greet_noauth, connect_v4, big}));
  EXPECT_EQ(t.end, "established");
  EXPECT_EQ(t.tunnel, big);
}

}  // namespace
