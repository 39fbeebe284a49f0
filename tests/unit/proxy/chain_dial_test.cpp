// The chain dial plan's pieces without proxies: pool health, the order of attempts, and which
// route the rules choose (direct, via by address, via by name, or a deny).
#include <gtest/gtest.h>

#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "config/load.hpp"
#include "proxy/core/snapshot.hpp"
#include "proxy/outbound/chain_dial.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;
using clock_type = upstream_health::clock;

std::shared_ptr<const runtime_snapshot> snapshot_of(const std::string& yaml) {
  auto loaded = config::load_config_text(yaml, "gw.yaml");
  EXPECT_TRUE(loaded.value.has_value()) << (loaded.diagnostics.empty() ? "" : loaded.diagnostics[0].message);
  auto built = make_snapshot(loaded.value.value_or(config::config{}), 1);
  EXPECT_TRUE(built.snapshot != nullptr);
  return built.snapshot;
}

const std::string upstreams = R"(listeners:
  - {name: edge, bind: "127.0.0.1:0", protocols: [socks5]}
upstreams:
  - {name: a, url: "socks5://127.0.0.1:1081"}
  - {name: b, url: "http://127.0.0.1:3128"}
  - {name: c, url: "socks4a://127.0.0.1:1082"}
  - {name: bc, pool: [b, c], fail_after: 2, set_aside: 10s}
  - {name: chain, chain: [a, bc]}
  - {name: named, url: "socks5://127.0.0.1:1083", resolve: upstream}
)";

std::vector<std::string> names(const chain_attempt& a) {
  std::vector<std::string> out;
  for (const auto* h : a.hops) out.push_back(h->name);
  return out;
}

TEST(UpstreamHealth, SetsAsideAfterFailuresInARowForTheConfiguredTime) {
  upstream_health h;
  const auto t0 = clock_type::now();
  EXPECT_FALSE(h.is_aside("pool", "m", t0));
  h.failed("pool", "m", 2, 10s, t0);
  EXPECT_FALSE(h.is_aside("pool", "m", t0));
  h.succeeded("pool", "m");  // the count starts again
  h.failed("pool", "m", 2, 10s, t0);
  EXPECT_FALSE(h.is_aside("pool", "m", t0));
  h.failed("pool", "m", 2, 10s, t0);
  EXPECT_TRUE(h.is_aside("POOL", "M", t0 + 9s));  // names compare case-insensitively
  EXPECT_FALSE(h.is_aside("pool", "m", t0 + 10s));
  EXPECT_FALSE(h.is_aside("pool", "other", t0));
  EXPECT_FALSE(h.is_aside("poo", "lm", t0));  // keys of pool and member stay apart
}

TEST(UpstreamHealth, CountsFromManyThreads) {
  upstream_health h;
  const auto t0 = clock_type::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t0] {
      for (int i = 0; i < 250; ++i) h.failed("p", "m", 1000, 5s, t0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(h.is_aside("p", "m", t0 + 1s));  // exactly 1000 failures reached the threshold
}

TEST(ChainAttempts, ChainWithAPoolExpandsInOrderAndSetAsideMembersGoLast) {
  const auto snap = snapshot_of(upstreams);
  ASSERT_TRUE(snap);
  const auto* chain = snap->find_upstream("chain");
  ASSERT_NE(chain, nullptr);
  const auto t0 = clock_type::now();
  auto attempts = attempts_for(*snap, *chain, nullptr, t0);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(names(attempts[0]), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(names(attempts[1]), (std::vector<std::string>{"a", "c"}));
  // The pool choice is recorded on the hop it put there, not on the hop before it.
  EXPECT_TRUE(attempts[0].choices[0].empty());
  ASSERT_EQ(attempts[0].choices[1].size(), 1u);
  EXPECT_EQ(attempts[0].choices[1][0].member, "b");

  upstream_health h;
  h.failed("bc", "b", 2, 10s, t0);
  h.failed("bc", "b", 2, 10s, t0);
  attempts = attempts_for(*snap, *chain, &h, t0 + 1s);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(names(attempts[0]), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(names(attempts[1]), (std::vector<std::string>{"a", "b"}));
  attempts = attempts_for(*snap, *chain, &h, t0 + 11s);
  EXPECT_EQ(names(attempts[0]), (std::vector<std::string>{"a", "b"}));
}

/// proxy::dial for `where` under the snapshot's rules, with via routes.
dial_result dial_now(const runtime_snapshot& snap, target where) {
  net::io_context io;
  dial_result out;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        phase_deadline dl(co_await net::this_coro::executor);
        dl.start(2000ms);
        dial_options opts;
        opts.routes = &snap.cfg;
        const dial_identity who{*config::parse_ip_literal("127.0.0.1"), "", "edge"};
        out = co_await dial(snap.pol, who, std::move(where), dl, opts);
        dl.stop();
      },
      net::detached);
  io.run();
  return out;
}

target by_address(const char* a, std::uint16_t port) {
  target t;
  t.address = net::ip::make_address(a);
  t.port = port;
  return t;
}

target by_name(const char* host, std::uint16_t port) {
  target t;
  t.host = host;
  t.port = port;
  return t;
}

TEST(ChainRoute, AnAddressAllowedByAViaRuleIsAskedOfTheUpstream) {
  const auto snap = snapshot_of(upstreams + R"(rules:
  - {name: far, action: allow, to: ["192.0.2.0/24"], via: chain}
)");
  ASSERT_TRUE(snap);
  const dial_result r = dial_now(*snap, by_address("192.0.2.7", 5432));
  EXPECT_EQ(r.result, outcome::success);
  EXPECT_FALSE(r.socket.has_value());  // the gateway itself connected to nothing
  ASSERT_TRUE(r.via.has_value());
  EXPECT_EQ(r.via->upstream->name, "chain");
  ASSERT_EQ(r.via->addresses.size(), 1u);
  EXPECT_EQ(r.via->addresses[0], tcp::endpoint(net::ip::make_address("192.0.2.7"), 5432));
  EXPECT_EQ(r.rule, "far");
}

TEST(ChainRoute, ANameGoesToAnUpstreamThatResolves) {
  const auto snap = snapshot_of(upstreams + R"(rules:
  - {name: db, action: allow, to: ["db.partner.example:5432"], via: named}
)");
  ASSERT_TRUE(snap);
  const dial_result r = dial_now(*snap, by_name("db.partner.example", 5432));
  EXPECT_EQ(r.result, outcome::success);
  ASSERT_TRUE(r.via.has_value());
  EXPECT_EQ(r.via->host, "db.partner.example");
  EXPECT_TRUE(r.via->addresses.empty());
  EXPECT_EQ(r.via->port, 5432);
}

TEST(ChainRoute, ANameThatNeedsAnAddressToDecideIsDeniedForAnUpstreamThatResolves) {
  // The earlier rule names a network: the name alone cannot be decided, the gateway resolves it,
  // and the via rule reached on that address gives names to its upstream: a deny.
  const auto snap = snapshot_of(upstreams + R"(rules:
  - {name: no-loopback, action: deny, to: ["10.0.0.0/8"]}
  - {name: by-name, action: allow, to: ["localhost:5432"], via: named}
)");
  ASSERT_TRUE(snap);
  const dial_result r = dial_now(*snap, by_name("localhost", 5432));
  EXPECT_EQ(r.result, outcome::denied);
  EXPECT_FALSE(r.via.has_value());
  EXPECT_EQ(r.rule, "by-name");
}

TEST(ChainRoute, ResolveLocalDecidesEachAddressBeforeAskingTheUpstream) {
  const auto snap = snapshot_of(upstreams + R"(rules:
  - {name: no-v6, action: deny, to: ["::/0"]}
  - {name: local, action: allow, to: ["localhost:5432"], via: a}
)");
  ASSERT_TRUE(snap);
  const dial_result r = dial_now(*snap, by_name("localhost", 5432));
  ASSERT_EQ(r.result, outcome::success);
  ASSERT_TRUE(r.via.has_value());
  ASSERT_FALSE(r.via->addresses.empty());
  for (const auto& ep : r.via->addresses) EXPECT_TRUE(ep.address().is_v4()) << ep;  // ::1 was denied
}

}  // namespace
}  // namespace edgerelay::proxy
