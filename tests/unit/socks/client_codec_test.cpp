// Unit tests of the SOCKS5 and SOCKS4a client codecs (the gateway as a client of an upstream),
// with the servers' answers fed whole, cut at every offset, byte by byte, and read exactly.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "socks/socks4_client_codec.hpp"
#include "socks/socks5_client_codec.hpp"
#include "tests/unit/support/split_feed.hpp"

namespace {

namespace socks = edgerelay::socks;
using edgerelay::test::bytes;
using edgerelay::test::expect_prefix_consistent;
using edgerelay::test::hex;

/// What a client said and how it ended, as text.
struct run {
  std::vector<std::string> events;
  bytes leftover;
  friend bool operator==(const run&, const run&) = default;
  friend void PrintTo(const run& r, std::ostream* os) {
    for (const auto& e : r.events) *os << "\n  " << e;
    *os << "\n  leftover: " << hex(r.leftover);
  }
};

std::string describe(const socks::client_step_t& step) {
  if (const auto* s = std::get_if<socks::client_step::send>(&step)) {
    return "send " + hex(s->bytes);
  }
  if (const auto* c = std::get_if<socks::client_step::connected>(&step)) {
    std::string bound = "name";
    if (c->bound) {
      bound = std::holds_alternative<socks::ipv4_bytes>(*c->bound) ? "v4" : "v6";
    }
    return "connected bound=" + bound + " port=" + std::to_string(c->bound_port);
  }
  if (const auto* f = std::get_if<socks::client_step::failed>(&step)) {
    return "failed " + std::string(socks::to_string(f->why)) + " code=" + std::to_string(f->code);
  }
  return "need_more";
}

template <class Client>
run drive(Client client, const std::vector<std::span<const std::uint8_t>>& chunks) {
  run r;
  r.events.push_back("start " + hex(client.start()));
  bool done = false;
  for (const auto chunk : chunks) {
    socks::client_step_t step = client.feed(chunk);
    while (!done && !std::holds_alternative<socks::client_step::need_more>(step)) {
      r.events.push_back(describe(step));
      done = !std::holds_alternative<socks::client_step::send>(step);
      if (!done) {
        step = client.feed({});  // the next answer may already be buffered
      }
    }
  }
  const auto rest = client.leftover();
  r.leftover.assign(rest.begin(), rest.end());
  return r;
}

/// Same run whole, at every cut and byte by byte.
template <class Client>
run expect_same_at_every_split(const Client& proto, std::span<const std::uint8_t> answers) {
  const run whole = drive(proto, {answers});
  for (std::size_t cut = 0; cut <= answers.size(); ++cut) {
    SCOPED_TRACE("split at " + std::to_string(cut));
    EXPECT_EQ(drive(proto, {answers.first(cut), answers.subspan(cut)}), whole);
  }
  std::vector<std::span<const std::uint8_t>> single;
  for (std::size_t i = 0; i < answers.size(); ++i) single.push_back(answers.subspan(i, 1));
  EXPECT_EQ(drive(proto, single), whole);
  return whole;
}

/// Reads exactly wanted() bytes each time, as the hops do; returns how many answer bytes it took.
template <class Client>
std::size_t exact_reads(Client client, std::span<const std::uint8_t> answers) {
  (void)client.start();
  std::size_t taken = 0;
  while (client.wanted() > 0 && taken < answers.size()) {
    const std::size_t n = std::min(client.wanted(), answers.size() - taken);
    (void)client.feed(answers.subspan(taken, n));
    taken += n;
  }
  return taken;
}

socks::target_address name(std::string host, std::uint16_t port) {
  return socks::target_address{std::move(host), port};
}

const bytes v4_success{0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0x1F, 0x90};

TEST(Socks5Client, NoAuthConnectByName) {
  const socks::socks5_client c({}, name("example.com", 443));
  const bytes answers = edgerelay::test::concat({bytes{0x05, 0x00}, v4_success, bytes{'h', 'i'}});
  const run r = expect_same_at_every_split(c, answers);
  EXPECT_EQ(r.events,
            (std::vector<std::string>{"start 05 01 00", "send 05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 01 bb",
                                      "connected bound=v4 port=8080"}));
  EXPECT_EQ(r.leftover, (bytes{'h', 'i'}));
  EXPECT_EQ(exact_reads(c, answers), answers.size() - 2);  // the tunnel bytes stay unread
}

TEST(Socks5Client, UsernamePasswordThenConnectByAddress) {
  const socks::socks5_client c({"alice", "s3cret"}, socks::target_address{socks::ipv4_bytes{10, 0, 0, 7}, 22});
  const bytes answers = edgerelay::test::concat({bytes{0x05, 0x02}, bytes{0x01, 0x00}, v4_success});
  const run r = expect_same_at_every_split(c, answers);
  EXPECT_EQ(r.events, (std::vector<std::string>{"start 05 02 00 02", "send 01 05 61 6c 69 63 65 06 73 33 63 72 65 74",
                                                "send 05 01 00 01 0a 00 00 07 00 16", "connected bound=v4 port=8080"}));
  EXPECT_EQ(exact_reads(c, answers), answers.size());
}

TEST(Socks5Client, ConnectByIpv6AndNameInReply) {
  socks::ipv6_bytes v6{};
  v6[15] = 1;
  const socks::socks5_client c({}, socks::target_address{v6, 80});
  const bytes answers{0x05, 0x00, 0x05, 0x00, 0x00, 0x03, 0x01, 'x', 0x00, 0x50};
  const run r = expect_same_at_every_split(c, answers);
  EXPECT_EQ(r.events.back(), "connected bound=name port=80");
}

TEST(Socks5Client, Failures) {
  const socks::socks5_client plain({}, name("a.example", 1));
  const socks::socks5_client login({"u", "p"}, name("a.example", 1));
  EXPECT_EQ(expect_same_at_every_split(plain, bytes{0x05, 0xFF}).events.back(),
            "failed authentication required code=255");
  EXPECT_EQ(expect_same_at_every_split(plain, bytes{0x05, 0x02}).events.back(),
            "failed authentication required code=2");
  EXPECT_EQ(expect_same_at_every_split(login, bytes{0x05, 0x02, 0x01, 0x01}).events.back(),
            "failed credentials rejected code=1");
  EXPECT_EQ(
      expect_same_at_every_split(plain, bytes{0x05, 0x00, 0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0}).events.back(),
      "failed refused code=5");
  EXPECT_EQ(expect_same_at_every_split(plain, bytes{0x05, 0x01}).events.back(), "failed protocol error code=1");
  EXPECT_EQ(expect_same_at_every_split(plain, bytes{'H', 'T', 'T', 'P'}).events.back(), "failed protocol error code=0");
  EXPECT_EQ(expect_same_at_every_split(plain, bytes{0x05, 0x00, 0x05, 0x00, 0x00, 0x09}).events.back(),
            "failed protocol error code=0");
  EXPECT_EQ(expect_same_at_every_split(login, bytes{0x05, 0x02, 0x05, 0x00}).events.back(),
            "failed protocol error code=0");
}

TEST(Socks5Client, RefusesTargetsItCannotSend) {
  socks::socks5_client c({}, name(std::string(256, 'a'), 80));
  (void)c.start();
  EXPECT_TRUE(std::holds_alternative<socks::client_step::failed>(c.feed(bytes{0x05, 0x00})));
  socks::socks5_client long_user({std::string(256, 'u'), "p"}, name("x", 80));
  (void)long_user.start();
  EXPECT_TRUE(std::holds_alternative<socks::client_step::failed>(long_user.feed(bytes{0x05, 0x02})));
}

TEST(Socks5Client, ReplyParserIsPrefixConsistent) {
  auto parse = [](std::span<const std::uint8_t> in) { return socks::parse_socks5_reply(in); };
  expect_prefix_consistent<socks::socks5_reply>(parse, v4_success);
  expect_prefix_consistent<socks::socks5_reply>(parse, bytes{0x05, 0x00, 0x00, 0x03, 0x02, 'a', 'b', 0x00, 0x01});
  bytes v6{0x05, 0x04, 0x00, 0x04};
  v6.insert(v6.end(), 18, 0x00);
  expect_prefix_consistent<socks::socks5_reply>(parse, v6);
  expect_prefix_consistent<socks::socks5_reply>(parse, bytes{0x05, 0x00, 0x00, 0x03, 0x00});
  expect_prefix_consistent<socks::socks5_reply>(parse, bytes{0x04, 0x00});
}

TEST(Socks4Client, ConnectByNameAndByAddress) {
  const socks::socks4_client by_name(name("db.internal", 5002), "gw");
  const bytes granted{0x00, 0x5A, 0x13, 0x8A, 10, 0, 0, 1, 'x'};
  const run r = expect_same_at_every_split(by_name, granted);
  EXPECT_EQ(r.events,
            (std::vector<std::string>{"start 04 01 13 8a 00 00 00 01 67 77 00 64 62 2e 69 6e 74 65 72 6e 61 6c 00",
                                      "connected bound=v4 port=5002"}));
  EXPECT_EQ(r.leftover, (bytes{'x'}));
  EXPECT_EQ(exact_reads(by_name, granted), 8U);
  const socks::socks4_client by_address(socks::target_address{socks::ipv4_bytes{10, 1, 2, 3}, 80}, "");
  EXPECT_EQ(expect_same_at_every_split(by_address, granted).events.front(), "start 04 01 00 50 0a 01 02 03 00");
}

TEST(Socks4Client, Failures) {
  const socks::socks4_client c(name("a.example", 80), "");
  EXPECT_EQ(expect_same_at_every_split(c, bytes{0x00, 0x5B, 0, 0, 0, 0, 0, 0}).events.back(), "failed refused code=91");
  EXPECT_EQ(expect_same_at_every_split(c, bytes{0x00, 0x5D, 0, 0, 0, 0, 0, 0}).events.back(),
            "failed credentials rejected code=93");
  EXPECT_EQ(expect_same_at_every_split(c, bytes{0x00, 0x42, 0, 0, 0, 0, 0, 0}).events.back(),
            "failed protocol error code=66");
  EXPECT_EQ(expect_same_at_every_split(c, bytes{0x05, 0x00}).events.back(), "failed protocol error code=0");
  // A server that answers VN 4 instead of 0 is taken as granting.
  EXPECT_EQ(expect_same_at_every_split(c, bytes{0x04, 0x5A, 0, 0, 0, 0, 0, 0}).events.back(),
            "connected bound=v4 port=0");
  socks::ipv6_bytes v6{};
  socks::socks4_client ipv6(socks::target_address{v6, 80}, "");
  EXPECT_TRUE(ipv6.start().empty());
  auto parse = [](std::span<const std::uint8_t> in) { return socks::parse_socks4_reply(in); };
  expect_prefix_consistent<socks::socks4_reply_message>(parse, bytes{0x00, 0x5A, 0, 80, 1, 2, 3, 4});
}

}  // namespace
