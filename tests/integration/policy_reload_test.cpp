// Policy at runtime: reload keeps tunnels flowing, bad files keep the old rules, recheck revokes,
// backends by name and forward doors, per-source limits.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/harness.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

std::string config_with(const std::string& rules, bool recheck = false, const std::string& extra_limits = "") {
  return R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4]}
rules:
)" + rules +
         R"(
limits: {)" +
         extra_limits + R"(handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 1s}
reload: {recheck_sessions: )" +
         (recheck ? "true" : "false") + R"(}
log: {level: error, access: off}
)";
}

const std::string allow_loopback =
    "  - {name: loopback, action: allow, from: [\"127.0.0.0/8\"], to: [\"127.0.0.0/8\"]}\n";
const std::string deny_three = "  - {name: no-three, action: deny, to: [\"127.0.0.3\"]}\n";

/// Opens a tunnel and proves it with one echo.
std::unique_ptr<client> open_tunnel(gateway& gw, const tcp::endpoint& target) {
  auto c = std::make_unique<client>(gw.endpoint());
  const bytes reply = socks5_connect(*c, target);
  if (reply[1] != 0x00) throw std::runtime_error("tunnel refused with REP " + std::to_string(reply[1]));
  c->send(std::string("hi"));
  if (to_text(c->read_exact(2)) != "hi") throw std::runtime_error("no echo");
  return c;
}

std::uint8_t socks5_rep(gateway& gw, const tcp::endpoint& target) {
  client c(gw.endpoint());
  return socks5_connect(c, target)[1];
}

/// Polls `probe` until it returns `want` (bounded).
template <class Probe, class T>
bool eventually(Probe probe, T want, std::chrono::milliseconds limit = 5s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (probe() == want) return true;
    std::this_thread::sleep_for(50ms);
  }
  return probe() == want;
}

TEST(PolicyReload, HundredTunnelsKeepFlowingThroughAReloadThatChangesRules) {
  backend one(backend_mode::echo, "127.0.0.1");
  backend three(backend_mode::echo, "127.0.0.3");
  config_file file(config_with(allow_loopback));
  auto gw = gateway::from_file(file.path());
  std::vector<std::unique_ptr<client>> tunnels;
  for (int i = 0; i < 100; ++i) {
    tunnels.push_back(open_tunnel(*gw, i % 2 == 0 ? one.endpoint() : three.endpoint()));
  }
  file.write(config_with(deny_three + allow_loopback));
  gw->server().reload();
  // The next session sees the new rules at once...
  ASSERT_TRUE(eventually([&] { return socks5_rep(*gw, three.endpoint()); }, std::uint8_t{0x02}));
  EXPECT_EQ(socks5_rep(*gw, one.endpoint()), 0x00);
  // ...while every tunnel opened before keeps flowing (no recheck asked for).
  for (std::size_t i = 0; i < tunnels.size(); ++i) {
    const bytes payload = pattern(2000, static_cast<std::uint32_t>(i));
    tunnels[i]->send(payload);
    EXPECT_EQ(tunnels[i]->read_exact(payload.size()), payload) << "tunnel " << i;
  }
}

TEST(PolicyReload, BrokenFileKeepsTheRunningPolicy) {
  backend three(backend_mode::echo, "127.0.0.3");
  config_file file(config_with(allow_loopback));
  auto gw = gateway::from_file(file.path());
  auto tunnel = open_tunnel(*gw, three.endpoint());
  file.write(config_with(deny_three + allow_loopback) + "bogus_key: 1\n");
  gw->server().reload();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(socks5_rep(*gw, three.endpoint()), 0x00) << "a broken file must not change the rules";
  tunnel->send(std::string("ok"));
  EXPECT_EQ(to_text(tunnel->read_exact(2)), "ok");
}

TEST(PolicyReload, RecheckClosesExactlyTheNowDeniedTunnels) {
  backend one(backend_mode::echo, "127.0.0.1");
  backend three(backend_mode::echo, "127.0.0.3");
  config_file file(config_with(allow_loopback, true));
  auto gw = gateway::from_file(file.path());
  std::vector<std::unique_ptr<client>> to_one;
  std::vector<std::unique_ptr<client>> to_three;
  for (int i = 0; i < 10; ++i) {
    to_one.push_back(open_tunnel(*gw, one.endpoint()));
    to_three.push_back(open_tunnel(*gw, three.endpoint()));
  }
  file.write(config_with(deny_three + allow_loopback, true));
  gw->server().reload();
  for (auto& c : to_three) {
    EXPECT_TRUE(c->closed_within(3s)) << "a tunnel the new rules deny must be closed";
  }
  for (auto& c : to_one) {
    c->send(std::string("still"));
    EXPECT_EQ(to_text(c->read_exact(5)), "still");
  }
  EXPECT_EQ(gw->server().active_sessions(), 10);
}

TEST(PolicyReload, RecheckAlsoClosesHttpSessionsTheNewRulesDeny) {
  backend web(backend_mode::echo);
  const auto config_for = [&](const std::string& first_rule) {
    return R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [http], fallback: web}
backends:
  - {name: web, host: 127.0.0.1, portbase: )" +
           std::to_string(web.port() - 1) + R"(}
rules:
)" + first_rule +
           R"(  - {name: web, action: allow, from: ["127.0.0.0/8"], to: ["backend:web"]}
reload: {recheck_sessions: true}
log: {level: error, access: off}
)";
  };
  config_file file(config_for(""));
  auto gw = gateway::from_file(file.path());
  // A request to the gateway itself goes to the fallback backend and stays relayed there.
  client c(gw->endpoint());
  c.send(std::string("GET / HTTP/1.1\r\nHost: gw\r\n\r\n"));
  EXPECT_EQ(to_text(c.read_exact(3)), "GET");
  file.write(config_for("  - {name: web-closed, action: deny, to: [\"backend:web\"]}\n"));
  gw->server().reload();
  EXPECT_TRUE(c.closed_within(3s)) << "an HTTP session the new rules deny must be closed too";
}

TEST(PolicyReload, FileChangeOnDiskReloadsWithoutASignal) {
  backend three(backend_mode::echo, "127.0.0.3");
  config_file file(config_with(allow_loopback));
  auto gw = gateway::from_file(file.path());
  EXPECT_EQ(socks5_rep(*gw, three.endpoint()), 0x00);
  file.write(config_with(deny_three + allow_loopback));
  EXPECT_TRUE(eventually([&] { return socks5_rep(*gw, three.endpoint()); }, std::uint8_t{0x02}, 5s));
}

/// A loopback TCP port nobody listens on now (the kernel's pick, released again).
std::uint16_t free_tcp_port() {
  net::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(net::ip::address_v4::loopback(), 0));
  return a.local_endpoint().port();
}

TEST(PolicyReload, ListenerAddressChangeMovesTheListenerAndClosesTheOldAddress) {
  backend echo(backend_mode::echo);
  config_file file(config_with(allow_loopback));
  auto gw = gateway::from_file(file.path());
  const tcp::endpoint before = gw->endpoint();
  auto tunnel = open_tunnel(*gw, echo.endpoint());
  const std::uint16_t port = free_tcp_port();
  std::string moved = config_with(deny_three + allow_loopback);
  moved.replace(moved.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(port));
  file.write(moved);
  gw->server().reload();
  ASSERT_TRUE(eventually([&] { return gw->endpoint().port(); }, port));
  // The new address serves under the new rules; the old one refuses; a tunnel through it goes on.
  client c(gw->endpoint());
  EXPECT_EQ(socks5_connect(c, tcp::endpoint(net::ip::make_address("127.0.0.3"), echo.port()))[1], 0x02);
  EXPECT_EQ(socks5_rep(*gw, echo.endpoint()), 0x00);
  // The workers close the old acceptors just after the reload is committed.
  EXPECT_TRUE(eventually(
      [&] {
        try {
          client old(before);
          return false;
        } catch (const std::exception&) {
          return true;
        }
      },
      true))
      << "the old address must refuse connections";
  tunnel->send(std::string("on"));
  EXPECT_EQ(to_text(tunnel->read_exact(2)), "on");
}

TEST(PolicyReload, ReloadWhoseAddressIsTakenKeepsEverythingAsItWas) {
  backend three(backend_mode::echo, "127.0.0.3");
  config_file file(config_with(allow_loopback));
  auto gw = gateway::from_file(file.path());
  const tcp::endpoint before = gw->endpoint();
  net::io_context ioc;
  tcp::acceptor squatter(ioc, tcp::endpoint(net::ip::address_v4::loopback(), 0));
  std::string blocked = config_with(deny_three + allow_loopback);
  blocked.replace(blocked.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(squatter.local_endpoint().port()));
  file.write(blocked);
  gw->server().reload();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(gw->endpoint(), before);
  EXPECT_EQ(socks5_rep(*gw, three.endpoint()), 0x00) << "a failed reload must keep the old rules";
}

TEST(Backends, ForwardListenerSendsEverySessionToItsBackend) {
  backend server(backend_mode::greet_then_echo);
  const std::string yaml = R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
  - {name: door, bind: "127.0.0.1:0", forward: sql}
backends:
  - {name: sql, host: 127.0.0.1, portbase: )" +
                           std::to_string(server.port() - 1) + R"(}
rules:
  - {name: doors, action: allow, from: ["127.0.0.0/8"], to: ["backend:sql"], listeners: [door]}
log: {level: error, access: off}
)";
  gateway gw(yaml);
  client c(gw.endpoint("door"));
  EXPECT_EQ(to_text(c.read_exact(6)), "HELLO\n");  // no handshake: the server speaks first
  c.send(std::string("native"));
  EXPECT_EQ(to_text(c.read_exact(6)), "native");
  // The rule names the door: the same backend through the SOCKS listener is denied.
  client s(gw.endpoint("test"));
  EXPECT_EQ(socks5_connect(s, server.endpoint())[1], 0x02);
}

TEST(Backends, ForwardDoorClosesWhenRulesDenyTheClient) {
  backend server(backend_mode::greet_then_echo);
  const std::string yaml = R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", forward: sql}
backends:
  - {name: sql, host: 127.0.0.1, portbase: )" +
                           std::to_string(server.port() - 1) + R"(}
rules:
  - {name: office, action: allow, from: ["10.1.0.0/16"], to: ["backend:sql"]}
log: {level: error, access: off}
)";
  gateway gw(yaml);
  client c(gw.endpoint());
  EXPECT_TRUE(c.closed_within(2s));
  EXPECT_TRUE(server.peers().empty());
}

TEST(Backends, TargetNamedAfterABackendGoesThere) {
  backend server(backend_mode::echo);
  const std::string yaml = R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4]}
backends:
  - {name: sql, host: 127.0.0.1, portbase: )" +
                           std::to_string(server.port() - 1) + R"(}
rules:
  - {name: sql-only, action: allow, from: ["127.0.0.0/8"], to: ["backend:sql"]}
log: {level: error, access: off}
)";
  gateway gw(yaml);
  {
    client c(gw.endpoint());
    c.send(socks5_greeting_noauth());
    c.read_exact(2);
    c.send(socks5_connect_domain("SQL", server.port()));  // names compare case-insensitively
    EXPECT_EQ(c.read_exact(10)[1], 0x00);
    c.send(std::string("by-name"));
    EXPECT_EQ(to_text(c.read_exact(7)), "by-name");
  }
  {
    // The stock 602SQL client names the server's own address and PORTBASE+1 through SOCKS4.
    client c(gw.endpoint());
    c.send(socks4_connect_request(server.endpoint()));
    EXPECT_EQ(c.read_exact(8)[1], 0x5A);
    c.send(std::string("by-address"));
    EXPECT_EQ(to_text(c.read_exact(10)), "by-address");
  }
}

TEST(Limits, PerSourceLimitRefusesTheExtraConnection) {
  backend echo(backend_mode::echo);
  gateway gw(config_with(allow_loopback, false, "per_source: 3, "));
  std::vector<std::unique_ptr<client>> open;
  for (int i = 0; i < 3; ++i) open.push_back(open_tunnel(gw, echo.endpoint()));
  client extra(gw.endpoint());
  EXPECT_TRUE(extra.closed_within(2s));
  open.pop_back();
  // A freed slot is usable again.
  EXPECT_TRUE(eventually(
      [&] {
        try {
          open_tunnel(gw, echo.endpoint());
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      true));
}

}  // namespace
}  // namespace edgerelay::testing
