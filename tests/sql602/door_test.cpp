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
#include <poll.h>

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
                        const std::string& listener_extra = "", const std::string& backend_host = "127.0.0.1") {
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
    host: )" +
         backend_host +
         R"(
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
  EXPECT_TRUE(eventually([&] { return gw.server().udp_counters_of("door").breaks_forwarded.load() == 2; }));

  // Sessions still work after their breaks.
  EXPECT_EQ(a.request(to_bytes("a")).type, sql602::answer);
  EXPECT_EQ(b.request(to_bytes("b")).type, sql602::answer);
}

/// The stock Windows client behind a SOCKS4 firewall names the server by its IPv4 address, however
/// the backend's host is written: as that address, or as a name that resolves to it.
void socks_firewall_breaks_reach_their_own_session(const std::string& backend_host) {
  sql602::server db;
  gateway gw(door_config(db.portbase(), "    egress: [\"127.0.0.20-127.0.0.21\"]\n", "", backend_host));
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

TEST(Sql602Door, SocksFirewallBreaksReachTheirOwnSession) {
  socks_firewall_breaks_reach_their_own_session("127.0.0.1");
}

TEST(Sql602Door, SocksFirewallBreaksReachTheirOwnSessionWhenTheBackendHostIsAName) {
  socks_firewall_breaks_reach_their_own_session("localhost");
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

// A UDP socket on `local` that sends queries and counts the replies, as a flooding (or spoofed)
// client would: the replies come to the port the queries name, which is this socket's.
class udp_prober {
 public:
  explicit udp_prober(const std::string& local, std::uint16_t port = 0) : s_(ioc_) {
    s_.open(udp::v4());
    s_.bind(udp::endpoint(net::ip::make_address(local), port));
  }
  std::uint16_t port() const { return s_.local_endpoint().port(); }
  /// `01 <this socket's port as the client writes it> 00`.
  bytes query() const {
    const std::string p = std::to_string(static_cast<std::int16_t>(port()));
    bytes q{0x01};
    q.insert(q.end(), p.begin(), p.end());
    q.push_back(0x00);
    return q;
  }
  void send(const udp::endpoint& to, const bytes& d) { s_.send_to(net::buffer(d), to); }
  /// Every datagram that arrives until none has for `quiet`, or until `most` have.
  std::vector<bytes> replies(std::chrono::milliseconds quiet, std::size_t most = 200) {
    std::vector<bytes> out;
    while (out.size() < most) {
      pollfd p{s_.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(quiet.count())) != 1) break;
      bytes d(1024);
      error_code ec;
      const std::size_t n = s_.receive(net::buffer(d), 0, ec);
      if (ec) break;
      d.resize(n);
      out.push_back(std::move(d));
    }
    return out;
  }

 private:
  net::io_context ioc_;
  udp::socket s_;
};

TEST(Sql602Door, RulesDecideEveryDatagramByItsSourceAndTheUdpPort) {
  sql602::server db;
  std::string yaml = door_config(db.portbase(), "    egress: [\"127.0.0.10-127.0.0.11\"]\n");
  // 127.0.0.2 may use the backend's whole service; 127.0.0.3 only its TCP port (portbase + 1),
  // so its sessions work but its datagrams to UDP portbase are denied; anyone else is denied.
  const std::string rules =
      "rules:\n  - {name: lab, action: allow, from: [\"127.0.0.2/32\"], to: [\"backend:sql\"]}\n"
      "  - {name: tcp-only, action: allow, from: [\"127.0.0.3/32\"], to: [\"sql:" +
      std::to_string(db.port()) + "\"]}\n";
  const auto at = yaml.find("rules:");
  yaml.replace(at, yaml.find("limits:") - at, rules);
  gateway gw(yaml);
  const udp::endpoint door_udp = udp_of(gw, "door");
  const auto& counters = gw.server().udp_counters_of("door");

  EXPECT_TRUE(sql602::discover(door_udp, 3s, "127.0.0.2"));
  EXPECT_FALSE(sql602::discover(door_udp, 500ms, "127.0.0.3"));
  EXPECT_FALSE(sql602::discover(door_udp, 500ms, "127.0.0.4"));
  EXPECT_TRUE(eventually([&] { return counters.denied.load() == 2; }));
  EXPECT_EQ(db.datagrams().size(), 1U);  // the denied queries never reached the server

  sql602::native_client tcp_only(gw.endpoint("door"), "127.0.0.3");
  tcp_only.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 1; }));
  tcp_only.send_break(door_udp);
  EXPECT_TRUE(eventually([&] { return counters.denied.load() == 3; }));
  sql602::native_client lab(gw.endpoint("door"), "127.0.0.2");
  lab.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 2; }));
  lab.send_break(door_udp);
  EXPECT_EQ(db.wait_breaks(1, 1), 1U);
  EXPECT_EQ(db.breaks(0), 0U);
  EXPECT_EQ(db.datagrams().size(), 2U);
  // The server can read the break before the door's send completes and counts it.
  EXPECT_TRUE(eventually([&] { return counters.breaks_forwarded.load() == 1; }));
  EXPECT_EQ(counters.denied.load(), 3U);
  EXPECT_EQ(counters.rate_limited.load(), 0U);
}

TEST(Sql602Door, AFloodFromOneSourceGetsAtMostItsBucketAndOthersAreUnaffected) {
  sql602::server db;
  gateway gw(door_config(db.portbase()));
  const udp::endpoint door_udp = udp_of(gw, "door");
  const auto& counters = gw.server().udp_counters_of("door");

  constexpr int flood = 100;
  udp_prober attacker("127.0.0.2");
  const bytes q = attacker.query();
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < flood; ++i) {
    attacker.send(door_udp, q);
  }
  const std::chrono::duration<double> sending = std::chrono::steady_clock::now() - started;
  // The bucket: 20 at once, then 10 a second while the flood was being sent.
  const auto allowed = static_cast<std::size_t>(20 + 10 * sending.count() + 1);
  ASSERT_TRUE(eventually([&] {
    return counters.discovery_answered.load() + counters.rate_limited.load() + counters.discovery_dropped.load() ==
           static_cast<std::uint64_t>(flood);
  })) << counters.discovery_answered.load()
      << " answered, " << counters.rate_limited.load() << " limited";
  const auto answers = attacker.replies(500ms);
  EXPECT_LE(answers.size(), allowed);
  EXPECT_GE(answers.size(), 10U);
  EXPECT_EQ(answers.size(), counters.discovery_answered.load());
  EXPECT_GE(counters.rate_limited.load(), static_cast<std::uint64_t>(flood) - allowed);
  // The server saw only the queries the gateway relayed.
  EXPECT_EQ(db.datagrams().size(), counters.discovery_answered.load());

  // Another source is not affected by the flooded one's bucket.
  const auto other = sql602::discover(door_udp, 3s, "127.0.0.3");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->first, expected_reply("SIMDB", static_cast<std::uint16_t>(gw.endpoint("door").port() - 1)));

  // A rate, not a ban: the flooded source's bucket refills (10 a second).
  std::this_thread::sleep_for(300ms);
  attacker.send(door_udp, q);
  EXPECT_EQ(attacker.replies(3s, 1).size(), 1U);
  EXPECT_TRUE(attacker.replies(100ms).empty());
}

TEST(Sql602Door, AReplyIsAtMostEightTimesItsQuery) {
  sql602::server_options longest;
  longest.name = std::string(31, 'N');  // the server's limit: the longest reply a query can buy
  sql602::server db(longest);
  gateway gw(door_config(db.portbase()));
  const udp::endpoint door_udp = udp_of(gw, "door");
  const auto& counters = gw.server().udp_counters_of("door");
  // "-1" is the client's way of writing port 65535; outside the ephemeral range, so free to bind.
  udp_prober client("127.0.0.2", 65535);

  // `01 "-1"`: 3 bytes, which may buy 24; the reply would be 39 (12, 31 names, 01 "<door-1>" 00).
  client.send(door_udp, bytes{0x01, '-', '1'});
  ASSERT_TRUE(eventually([&] { return counters.discovery_dropped.load() == 1; }));
  EXPECT_TRUE(client.replies(200ms).empty());
  EXPECT_EQ(db.datagrams().size(), 1U);  // asked, but the answer was too big to pass on

  // The same query padded to 6 bytes, the size of the stock client's shortest (`01 "5002" 00`).
  client.send(door_udp, bytes{0x01, '-', '1', ' ', ' ', 0x00});
  const auto replies = client.replies(3s, 1);
  ASSERT_EQ(replies.size(), 1U);
  EXPECT_EQ(replies[0], expected_reply(longest.name, static_cast<std::uint16_t>(gw.endpoint("door").port() - 1)));
  EXPECT_LE(replies[0].size(), 8U * 6U);
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
