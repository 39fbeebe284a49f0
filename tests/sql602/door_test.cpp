// 602SQL discovery, breaks, egress addresses and health checks through the gateway, against the
// simulated server of sql602_sim (docs/602sql.md; docs/config.md).
//
// How breaks are proven to reach the right session: the simulated server matches a break exactly
// as the real one does (the first live session, in accept order, whose TCP peer IPv4 equals the
// number in the datagram) and counts hits per session. Two clients with distinct source addresses
// (127.0.0.2 and 127.0.0.3) hold sessions at once; the gateway gives each its own egress address,
// so the server sees two peers. The *second* client's break must hit the second session only (a
// gateway without egress addresses would hit the first), and the datagram must name that
// session's egress address byte for byte.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "proxy/runtime/health.hpp"
#include "tests/integration/harness.hpp"
#include "tests/sql602/sql602_sim.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

std::string door_config(std::uint16_t portbase, const std::string& backend_extra = "",
                        const std::string& listener_extra = "") {
  return R"(
listeners:
  - name: door
    bind: "127.0.0.1:0"
    forward: sql
    udp_bind: "127.0.0.1:0"
  - name: firewall
    bind: "127.0.0.1:0"
    protocols: [socks4, socks5]
    udp_bind: "127.0.0.1:0"
)" + listener_extra +
         R"(
backends:
  - name: sql
    host: 127.0.0.1
    portbase: )" +
         std::to_string(portbase) + R"(
    kind: sql602
)" + backend_extra +
         R"(
rules:
  - name: to-sql
    action: allow
    from: ["127.0.0.0/8"]
    to: ["backend:sql"]
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 10s, shutdown_grace: 1s}
log: {level: error, access: off}
)";
}

udp::endpoint udp_of(gateway& gw, const std::string& listener) {
  return gw.server().udp_endpoint_of(listener);
}

bytes expected_reply(const std::string& name, std::uint16_t portbase) {
  bytes r{0x12};
  r.insert(r.end(), name.begin(), name.end());
  if (portbase != 5001) {
    r.push_back(0x01);
    const std::string p = std::to_string(portbase);
    r.insert(r.end(), p.begin(), p.end());
  }
  r.push_back(0x00);
  return r;
}

net::ip::address_v4 v4(const char* a) {
  return net::ip::make_address_v4(a);
}

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 5s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(Sql602Door, DiscoveryNamesTheGatewayAsTheServer) {
  sql602::server db;
  gateway gw(door_config(db.portbase()));
  const tcp::endpoint door = gw.endpoint("door");
  const auto reply = sql602::discover(udp_of(gw, "door"), 3s);
  ASSERT_TRUE(reply);
  // The reply names the gateway's door: PORTBASE = door - 1, from the gateway's address.
  EXPECT_EQ(reply->first, expected_reply("SIMDB", static_cast<std::uint16_t>(door.port() - 1)));
  EXPECT_EQ(reply->second.address(), door.address());
  // The server got a query naming the gateway's own reply port, not the client's.
  const auto seen = db.wait_datagrams(1);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].front(), 0x01);
  EXPECT_EQ(seen[0].back(), 0x00);
  // The counter moves when the gateway's send completes, which may be just after the client got it.
  EXPECT_TRUE(eventually([&] { return gw.server().udp_counters_of("door").discovery_answered.load() == 1U; }));

  // The client then connects where the reply says: source address, PORTBASE + 1 = the door.
  sql602::native_client c(tcp::endpoint(reply->second.address(), static_cast<std::uint16_t>(door.port())));
  c.login();
  const bytes expected_answer{0x00, 0x00, 0x00, 's', 'e', 'l', 'e', 'c', 't', ' ', '1'};
  EXPECT_EQ(c.request(to_bytes("select 1")).payload, expected_answer);
}

TEST(Sql602Door, BreaksThroughTheForwardDoorReachTheirOwnSession) {
  sql602::server db;
  gateway gw(door_config(db.portbase(), "    egress: [\"127.0.0.10-127.0.0.11\"]\n"));
  const tcp::endpoint door = gw.endpoint("door");
  const udp::endpoint breaks_at = udp_of(gw, "door");

  sql602::native_client a(door, "127.0.0.2");
  a.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 1; }));
  sql602::native_client b(door, "127.0.0.3");
  b.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 2; }));
  // Each session reaches the server from its own egress address, in session order.
  EXPECT_EQ(db.peer(0).address(), v4("127.0.0.10"));
  EXPECT_EQ(db.peer(1).address(), v4("127.0.0.11"));
  EXPECT_EQ(gw.server().backends().egress.in_use("sql"), 2U);

  // The second client's break: the server must break session 1, not the first session.
  EXPECT_EQ(b.send_break(breaks_at), sql602::break_datagram(v4("127.0.0.3")));
  EXPECT_EQ(db.wait_breaks(1, 1), 1U);
  EXPECT_EQ(db.breaks(0), 0U);
  auto seen = db.wait_datagrams(1);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0], sql602::break_datagram(v4("127.0.0.11")));  // 02 "184549503" 00

  a.send_break(breaks_at);
  EXPECT_EQ(db.wait_breaks(0, 1), 1U);
  EXPECT_EQ(db.breaks(1), 1U);
  seen = db.wait_datagrams(2);
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[1], sql602::break_datagram(v4("127.0.0.10")));

  // A stranger naming client a's address, and a malformed break: dropped and counted.
  sql602::send_datagram(breaks_at, sql602::break_datagram(v4("127.0.0.2")), "127.0.0.4");
  sql602::send_datagram(breaks_at,
                        to_bytes(std::string("\x02"
                                             "3355443210",
                                             11)),
                        "127.0.0.2");
  ASSERT_TRUE(eventually([&] { return gw.server().udp_counters_of("door").breaks_dropped.load() == 2; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(db.datagrams().size(), 2U);
  EXPECT_EQ(db.breaks(0), 1U);
  EXPECT_EQ(db.breaks(1), 1U);
  EXPECT_EQ(db.unmatched_breaks(), 0U);
  EXPECT_EQ(gw.server().udp_counters_of("door").breaks_forwarded.load(), 2U);

  // Sessions still work after their breaks.
  EXPECT_EQ(a.request(to_bytes("a")).type, sql602::answer);
  EXPECT_EQ(b.request(to_bytes("b")).type, sql602::answer);
}

TEST(Sql602Door, SocksFirewallBreaksReachTheirOwnSession) {
  sql602::server db;
  gateway gw(door_config(db.portbase(), "    egress: [\"127.0.0.20-127.0.0.21\"]\n"));
  const tcp::endpoint firewall = gw.endpoint("firewall");
  const tcp::endpoint server(v4("127.0.0.1"), db.port());

  sql602::native_client a(firewall, server, "127.0.0.2");
  ASSERT_EQ(a.socks_reply().size(), 8U);  // one 8-byte reply, as the Windows client reads it
  EXPECT_EQ(a.socks_reply()[1], 0x5A);
  a.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 1; }));
  sql602::native_client b(firewall, server, "127.0.0.3");
  ASSERT_EQ(b.socks_reply().size(), 8U);
  b.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 2; }));
  EXPECT_EQ(db.peer(0).address(), v4("127.0.0.20"));
  EXPECT_EQ(db.peer(1).address(), v4("127.0.0.21"));

  // Breaks go to the firewall's port - 1 (here its udp_bind).
  const udp::endpoint breaks_at = udp_of(gw, "firewall");
  b.send_break(breaks_at);
  EXPECT_EQ(db.wait_breaks(1, 1), 1U);
  EXPECT_EQ(db.breaks(0), 0U);
  a.send_break(breaks_at);
  EXPECT_EQ(db.wait_breaks(0, 1), 1U);
  EXPECT_EQ(db.breaks(1), 1U);
  const auto seen = db.wait_datagrams(2);
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0], sql602::break_datagram(v4("127.0.0.21")));
  EXPECT_EQ(seen[1], sql602::break_datagram(v4("127.0.0.20")));

  // A break from a client with no session through this listener is dropped and counted.
  sql602::send_datagram(breaks_at, sql602::break_datagram(v4("127.0.0.5")), "127.0.0.5");
  ASSERT_TRUE(eventually([&] { return gw.server().udp_counters_of("firewall").breaks_dropped.load() == 1; }));
  EXPECT_EQ(db.datagrams().size(), 2U);
}

TEST(Sql602Door, EgressSkipsHighOctetsAndFallsBackWhenExhausted) {
  sql602::server db;
  gateway gw(door_config(db.portbase(), "    egress: [\"127.0.0.126-127.0.1.0\"]\n"));
  const tcp::endpoint door = gw.endpoint("door");
  std::vector<std::unique_ptr<sql602::native_client>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<sql602::native_client>(door));
    clients.back()->login();
    ASSERT_TRUE(eventually([&] { return db.sessions() == static_cast<std::size_t>(i + 1); }));
  }
  EXPECT_EQ(db.peer(0).address(), v4("127.0.0.126"));
  EXPECT_EQ(db.peer(1).address(), v4("127.0.0.127"));
  EXPECT_EQ(db.peer(2).address(), v4("127.0.1.0"));  // .128 to .255 are never used (spec 8.2)
  EXPECT_EQ(db.peer(3).address(), v4("127.0.0.1"));  // pool exhausted: the default address
  EXPECT_EQ(clients[3]->request(to_bytes("x")).type, sql602::answer);
  // A closed session gives its address back.
  clients[0].reset();
  EXPECT_TRUE(db.wait_closed(0));
  ASSERT_TRUE(eventually([&] { return gw.server().backends().egress.in_use("sql") == 2; }))
      << gw.server().backends().egress.in_use("sql") << " in use, " << gw.server().active_sessions() << " sessions";
  sql602::native_client again(door);
  again.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 5; }));
  EXPECT_EQ(db.peer(4).address(), v4("127.0.0.126"));
}

TEST(Sql602Door, UnreachableServerGetsConnectResult15) {
  std::uint16_t closed_port = 0;
  {
    net::io_context ioc;
    tcp::acceptor probe(ioc, tcp::endpoint(v4("127.0.0.1"), 0));
    closed_port = probe.local_endpoint().port();
  }
  gateway gw(door_config(static_cast<std::uint16_t>(closed_port - 1)));
  sql602::native_client c(gw.endpoint("door"));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.read_exact(10), (bytes{0x0A, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xF7, 0x0F}));
  EXPECT_TRUE(c.closed_within(2s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(Sql602Door, DeniedClientGetsConnectResult45) {
  sql602::server db;
  std::string yaml = door_config(db.portbase());
  yaml.replace(yaml.find("127.0.0.0/8"), 11, "10.0.0.0/8");
  gateway gw(yaml);
  sql602::native_client c(gw.endpoint("door"));
  EXPECT_EQ(c.read_exact(10), (bytes{0x0A, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xF7, 0x2D}));
  EXPECT_TRUE(c.closed_within(2s));
  EXPECT_EQ(db.sessions(), 0U);
}

TEST(Sql602Door, HealthCheckDownSilencesDiscoveryAndFailsSessionsAtOnce) {
  sql602::server db;
  gateway gw(door_config(db.portbase(), "    health_check: {interval: 100ms, timeout: 300ms}\n"));
  auto& health = gw.server().backends().health;
  ASSERT_TRUE(eventually([&] { return health.state("sql") == proxy::backend_health::up; }));
  ASSERT_TRUE(sql602::discover(udp_of(gw, "door"), 3s));

  db.close_acceptor();  // TCP refused; the simulator's UDP would still answer
  ASSERT_TRUE(eventually([&] { return health.state("sql") == proxy::backend_health::down; }));
  const auto dropped_before = gw.server().udp_counters_of("door").discovery_dropped.load();
  EXPECT_FALSE(sql602::discover(udp_of(gw, "door"), 1s));
  EXPECT_EQ(gw.server().udp_counters_of("door").discovery_dropped.load(), dropped_before + 1);

  // Sessions fail at once with the reply code for an unreachable host.
  sql602::native_client door_client(gw.endpoint("door"));
  EXPECT_EQ(door_client.read_exact(10), (bytes{0x0A, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xF7, 0x0F}));
  client s5(gw.endpoint("firewall"));
  s5.send(socks5_greeting_noauth());
  EXPECT_EQ(s5.read_exact(2), (bytes{0x05, 0x00}));
  s5.send(socks5_connect_domain("sql", db.port()));
  const bytes reply = s5.read_exact(10);
  EXPECT_EQ(reply[1], 0x04);
  sql602::native_client s4(gw.endpoint("firewall"), tcp::endpoint(v4("127.0.0.1"), db.port()), "");
  ASSERT_EQ(s4.socks_reply().size(), 8U);
  EXPECT_EQ(s4.socks_reply()[1], 0x5B);
}

// The probe behind `edgerelay health` and the health checks, on its own.
net::awaitable<void> probe_into(config::backend_config b, proxy::probe_report& out) {
  out = co_await proxy::probe_backend(b, std::chrono::milliseconds(500));
}

proxy::probe_report probe_once(const config::backend_config& b) {
  proxy::probe_report r;
  net::io_context ioc;
  net::co_spawn(ioc, probe_into(b, r), [](const std::exception_ptr&) {});
  ioc.run();
  return r;
}

TEST(Sql602Door, ProbeReportsTcpAndDiscovery) {
  sql602::server db;
  config::backend_config b;
  b.name = "sql";
  b.host = "127.0.0.1";
  b.portbase = db.portbase();
  b.kind = config::backend_kind::sql602;
  auto r = probe_once(b);
  EXPECT_TRUE(r.up()) << r.detail;
  EXPECT_TRUE(r.discovery_ok.value_or(false));
  db.close_acceptor();
  r = probe_once(b);
  EXPECT_FALSE(r.up()) << r.detail;
  EXPECT_FALSE(r.tcp_ok);
}

}  // namespace
}  // namespace edgerelay::testing
