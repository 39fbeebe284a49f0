// In-band 602SQL breaks through the tunnel doors (docs/tunnel-protocol.md, the break control):
// several sessions to one simulated server, each from its own egress address, and a break sent
// in-band on one of them must hit exactly that session at the server.
//
// The simulated server matches a break as the real one does (the first live session whose TCP
// peer IPv4 equals the number in the datagram) and counts hits per session, so a break that named
// the wrong egress address, or the gateway's default one, would hit another session or none.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/load.hpp"
#include "proxy/outbound/gateway/client_setup.hpp"
#include "proxy/runtime/server.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/websocket_support.hpp"
#include "tests/sql602/sql602_sim.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

std::string tunnel_config(std::uint16_t portbase, std::uint16_t echo_port) {
  return R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [websocket, polling]}
backends:
  - name: sql
    host: 127.0.0.1
    portbase: )" +
         std::to_string(portbase) + R"(
    kind: sql602
    egress: ["127.0.0.30-127.0.0.32"]
  - {name: echo, host: 127.0.0.1, portbase: )" +
         std::to_string(echo_port - 1) + R"(}
rules:
  - {name: tunnels, action: allow, from: ["127.0.0.0/8"], to: ["backend:sql", "backend:echo"]}
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 1s}
log: {level: error, access: off}
)";
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

const bytes connresult_ok{0x0A, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, sql602::connresult, 0x00};

bytes version_frame() {
  return sql602::native_frame(sql602::version, bytes{0x00, 0x00, 0x0B, 0x00});
}

/// One WebSocket session to backend:sql, logged in (DT_CONNRESULT read, DT_VERSION sent).
struct ws_session {
  explicit ws_session(const tcp::endpoint& gw) : c(gw, "/edgerelay?target=backend:sql") {
    if (c.handshake_ec || c.status() != 101) throw std::runtime_error("websocket upgrade failed");
    bytes first;
    const bytes version = version_frame();
    c.run([&]() -> net::awaitable<void> {
      auto got = co_await c.read_until_fin(connresult_ok.size());
      first = std::move(got.bytes);
      co_await c.send_bytes(version);
    });
    if (first != connresult_ok) throw std::runtime_error("no DT_CONNRESULT 0 through the tunnel");
  }
  void send_break() {
    c.run([&]() -> net::awaitable<void> { co_await c.send_text(R"({"op":"break"})"); });
  }
  /// A request and its answer: once it is back, every message sent before it was read by the gateway.
  bytes request(const std::string& what) {
    const bytes frame = sql602::native_frame(sql602::request, to_bytes(what));
    bytes answer;
    c.run([&]() -> net::awaitable<void> {
      co_await c.send_bytes(frame);
      auto got = co_await c.read_until_fin(9 + 3 + what.size());
      answer = std::move(got.bytes);
    });
    return answer;
  }
  ws_client c;
};

bytes answer_frame(const std::string& what) {
  bytes payload{0x00, 0x00, 0x00};
  const bytes w = to_bytes(what);
  payload.insert(payload.end(), w.begin(), w.end());
  return sql602::native_frame(sql602::answer, payload);
}

TEST(Sql602InbandBreak, WebSocketBreakHitsExactlyItsOwnSession) {
  sql602::server db;
  backend echo(backend_mode::echo);
  gateway gw(tunnel_config(db.portbase(), echo.port()));
  std::vector<std::unique_ptr<ws_session>> s;
  for (int i = 0; i < 3; ++i) {
    s.push_back(std::make_unique<ws_session>(gw.endpoint()));
    ASSERT_TRUE(eventually([&] { return db.sessions() == static_cast<std::size_t>(i + 1); }));
  }
  EXPECT_EQ(db.peer(0).address(), v4("127.0.0.30"));
  EXPECT_EQ(db.peer(1).address(), v4("127.0.0.31"));
  EXPECT_EQ(db.peer(2).address(), v4("127.0.0.32"));

  // The middle session's break: a gateway that named its default address (or the first session's)
  // would hit session 0.
  s[1]->send_break();
  EXPECT_EQ(db.wait_breaks(1, 1), 1U);
  auto seen = db.wait_datagrams(1);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0], sql602::break_datagram(v4("127.0.0.31")));

  // A second break at once on the same session is rate-limited; the request behind it proves
  // the gateway read it before the answer came back.
  s[1]->send_break();
  EXPECT_EQ(s[1]->request("after"), answer_frame("after"));
  s[2]->send_break();
  EXPECT_EQ(db.wait_breaks(2, 1), 1U);
  seen = db.wait_datagrams(2);
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[1], sql602::break_datagram(v4("127.0.0.32")));
  EXPECT_EQ(db.breaks(0), 0U);
  EXPECT_EQ(db.breaks(1), 1U);

  // Past the limit, the session can be broken again.
  std::this_thread::sleep_for(600ms);
  s[1]->send_break();
  EXPECT_EQ(db.wait_breaks(1, 2), 2U);
  EXPECT_EQ(db.breaks(0), 0U);
  EXPECT_EQ(db.breaks(2), 1U);
  EXPECT_EQ(db.unmatched_breaks(), 0U);

  // A session to a backend of another kind ignores its break and goes on.
  ws_client plain(gw.endpoint(), "/edgerelay?target=backend:echo");
  ASSERT_EQ(plain.status(), 101);
  ws_client::received got;
  plain.run([&]() -> net::awaitable<void> {
    co_await plain.send_text(R"({"op":"break"})");
    co_await plain.send_bytes(to_bytes("still here"));
    got = co_await plain.read_until_fin(10);
  });
  EXPECT_EQ(to_text(got.bytes), "still here");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(db.datagrams().size(), 3U);
  for (auto& session : s) {
    EXPECT_EQ(session->request("ok"), answer_frame("ok"));
  }
}

/// A complete HTTP response: its head and body (Content-Length).
struct http_response {
  std::string head;
  bytes body;
  unsigned status() const { return static_cast<unsigned>(std::stoul(head.substr(9, 3))); }
};

http_response read_response(client& c) {
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    const bytes b = c.read_exact(1);
    head.push_back(static_cast<char>(b[0]));
    if (head.size() > 8192) throw std::runtime_error("response head too long");
  }
  std::size_t length = 0;
  const auto at = head.find("Content-Length: ");
  if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
  return http_response{head, length > 0 ? c.read_exact(length) : bytes{}};
}

/// One polling session to backend:sql, logged in.
struct poll_session {
  explicit poll_session(const tcp::endpoint& gw_) : gw(gw_) {
    client open(gw);
    open.send(
        std::string("POST /edgerelay/poll/open?target=backend:sql HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n"));
    const http_response r = read_response(open);
    if (r.status() != 200 || r.body.size() != 32) throw std::runtime_error("poll open failed: " + r.head);
    id = to_text(r.body);
    const http_response first = down();
    if (first.body != connresult_ok) throw std::runtime_error("no DT_CONNRESULT 0 through the tunnel");
    if (up(version_frame()).status() != 204) {
      throw std::runtime_error("DT_VERSION not accepted");
    }
  }
  http_response up(const bytes& body, const std::string& control = "", std::optional<std::uint64_t> at = {}) {
    const std::uint64_t n = at.value_or(seq_up);
    std::string head = "POST /edgerelay/poll/" + id + "/up?seq=" + std::to_string(n) +
                       " HTTP/1.1\r\nHost: gw\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    if (!control.empty()) head += "Edgerelay-Control: " + control + "\r\n";
    head += "\r\n";
    bytes req = to_bytes(head);
    req.insert(req.end(), body.begin(), body.end());
    ups.send(req);
    http_response r = read_response(ups);
    if (r.status() == 204 && !at) ++seq_up;
    return r;
  }
  http_response down() {
    for (int i = 0; i < 20; ++i) {
      downs.send(std::string("GET /edgerelay/poll/" + id + "/down?seq=" + std::to_string(seq_down) +
                             " HTTP/1.1\r\nHost: gw\r\n\r\n"));
      http_response r = read_response(downs);
      if (r.status() != 200) throw std::runtime_error("down failed: " + r.head);
      if (!r.body.empty()) {
        ++seq_down;
        return r;
      }
    }
    throw std::runtime_error("nothing came down");
  }
  tcp::endpoint gw;
  std::string id;
  client ups{gw};
  client downs{gw};
  std::uint64_t seq_up = 0;
  std::uint64_t seq_down = 0;
};

TEST(Sql602InbandBreak, PollingBreakHitsExactlyItsOwnSessionOncePerSeq) {
  sql602::server db;
  backend echo(backend_mode::echo);
  gateway gw(tunnel_config(db.portbase(), echo.port()));
  std::vector<std::unique_ptr<poll_session>> s;
  for (int i = 0; i < 3; ++i) {
    s.push_back(std::make_unique<poll_session>(gw.endpoint()));
    ASSERT_TRUE(eventually([&] { return db.sessions() == static_cast<std::size_t>(i + 1); }));
  }
  EXPECT_EQ(db.peer(1).address(), v4("127.0.0.31"));

  // An empty up with the break control on the middle session.
  const std::uint64_t seq = s[1]->seq_up;
  EXPECT_EQ(s[1]->up({}, "break").status(), 204);
  EXPECT_EQ(db.wait_breaks(1, 1), 1U);
  auto seen = db.wait_datagrams(1);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0], sql602::break_datagram(v4("127.0.0.31")));

  // Its retry (a lost 204) is acknowledged again but breaks nothing more, even past the rate limit.
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(s[1]->up({}, "break", seq).status(), 204);
  s[0]->up({}, "break");
  EXPECT_EQ(db.wait_breaks(0, 1), 1U);
  seen = db.wait_datagrams(2);
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[1], sql602::break_datagram(v4("127.0.0.30")));
  EXPECT_EQ(db.breaks(1), 1U);
  EXPECT_EQ(db.breaks(2), 0U);

  // A break riding on a request's bytes: the bytes still arrive, the break hits its session.
  EXPECT_EQ(s[2]->up(sql602::native_frame(sql602::request, to_bytes("q")), "break").status(), 204);
  EXPECT_EQ(db.wait_breaks(2, 1), 1U);
  EXPECT_EQ(s[2]->down().body, answer_frame("q"));
  EXPECT_EQ(db.breaks(0), 1U);
  EXPECT_EQ(db.breaks(1), 1U);
  EXPECT_EQ(db.unmatched_breaks(), 0U);
}

/// `edgerelay client` in-process: its config, plan and server, run as the command runs them.
class client_process {
 public:
  explicit client_process(const std::string& yaml) {
    auto loaded = config::load_config_text(yaml, "client.yaml", config::load_mode::client);
    if (!loaded.value) {
      std::string why;
      for (const auto& d : loaded.diagnostics) why += config::to_string(d) + "\n";
      throw std::runtime_error("client config rejected:\n" + why);
    }
    auto setup = proxy::gateway::make_client_setup(*loaded.value, [](std::string_view) { return std::nullopt; });
    if (!setup.plan) throw std::runtime_error("client setup failed: " + setup.errors.front());
    plan_ = std::move(setup.plan);
    proxy::server_options o;
    o.workers = 2;
    o.handle_signals = false;
    o.plan = plan_.get();
    o.mode = config::load_mode::client;
    server_ = std::make_unique<proxy::server>(std::move(*loaded.value), std::move(o));
    server_->start();
    control_ = std::thread([this] { server_->run(); });
  }
  ~client_process() {
    server_->shutdown();
    server_->shutdown();
    control_.join();
  }
  proxy::server& server() { return *server_; }

 private:
  std::unique_ptr<proxy::gateway::client_dial> plan_;
  std::unique_ptr<proxy::server> server_;
  std::thread control_;
};

std::string client_config(const tcp::endpoint& gw) {
  return R"(
listeners:
  - {name: local, bind: "127.0.0.1:0", protocols: [socks4], udp_bind: "127.0.0.1:0"}
  - {name: sql, bind: "127.0.0.1:0", forward: sql, udp_bind: "127.0.0.1:0"}
gateway: {address: ")" +
         gw.address().to_string() + ":" + std::to_string(gw.port()) + R"(", transport: websocket}
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 1s}
log: {level: error, access: off}
)";
}

/// Through edgerelay client (forward door and SOCKS4 firewall) and the gateway's WebSocket door:
/// the stock client's break datagram to the client's udp_bind breaks its own session at the
/// server, oldest first among the sessions of one client address, as the server itself matches.
TEST(Sql602InbandBreak, ClientBreaksCrossTheTunnelToTheirOwnSession) {
  sql602::server db;
  backend echo(backend_mode::echo);
  gateway gw(tunnel_config(db.portbase(), echo.port()));
  client_process cl(client_config(gw.endpoint()));
  const tcp::endpoint door = cl.server().endpoint_of("sql");
  const udp::endpoint door_breaks = cl.server().udp_endpoint_of("sql");

  sql602::native_client a(door, "127.0.0.2");
  a.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 1; }));
  sql602::native_client b(door, "127.0.0.3");
  b.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 2; }));
  EXPECT_EQ(db.peer(0).address(), v4("127.0.0.30"));
  EXPECT_EQ(db.peer(1).address(), v4("127.0.0.31"));

  // The second client's break: a client that broke its oldest session, or a gateway that named
  // the wrong egress address, would hit session 0.
  b.send_break(door_breaks);
  EXPECT_EQ(db.wait_breaks(1, 1), 1U);
  auto seen = db.wait_datagrams(1);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0], sql602::break_datagram(v4("127.0.0.31")));
  EXPECT_EQ(db.breaks(0), 0U);
  a.send_break(door_breaks);
  EXPECT_EQ(db.wait_breaks(0, 1), 1U);
  EXPECT_EQ(db.breaks(1), 1U);

  // Through the SOCKS4 firewall (breaks to its udp_bind): the stock Windows client names the
  // server by address; the gateway reaches it as the backend's address.
  const tcp::endpoint firewall = cl.server().endpoint_of("local");
  sql602::native_client c(firewall, tcp::endpoint(v4("127.0.0.1"), db.port()), "127.0.0.4");
  ASSERT_EQ(c.socks_reply().size(), 8U);
  EXPECT_EQ(c.socks_reply()[1], 0x5A);
  c.login();
  ASSERT_TRUE(eventually([&] { return db.sessions() == 3; }));
  EXPECT_EQ(db.peer(2).address(), v4("127.0.0.32"));
  c.send_break(cl.server().udp_endpoint_of("local"));
  EXPECT_EQ(db.wait_breaks(2, 1), 1U);
  EXPECT_TRUE(eventually([&] { return cl.server().udp_counters_of("local").breaks_forwarded.load() == 1U; }));

  // A stranger with no session through the door: dropped at the client, nothing crosses.
  sql602::send_datagram(door_breaks, sql602::break_datagram(v4("127.0.0.9")), "127.0.0.9");
  EXPECT_TRUE(eventually([&] { return cl.server().udp_counters_of("sql").breaks_dropped.load() == 1U; }));
  EXPECT_EQ(cl.server().udp_counters_of("sql").breaks_forwarded.load(), 2U);
  EXPECT_EQ(a.request(to_bytes("a")).type, sql602::answer);
  EXPECT_EQ(b.request(to_bytes("b")).type, sql602::answer);
  EXPECT_EQ(db.breaks(0), 1U);
  EXPECT_EQ(db.breaks(1), 1U);
}

}  // namespace
}  // namespace edgerelay::testing
