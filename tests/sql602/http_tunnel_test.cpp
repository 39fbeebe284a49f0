// The 602SQL HTTP tunnel through a real gateway: a simulated tunnel client against a simulated
// native server on PORTBASE+1 (docs/602sql.md), exact bytes both ways.
#include <gtest/gtest.h>

#include <string>

#include "tests/integration/harness.hpp"
#include "tests/sql602/sql602_sim.hpp"
#include "sql602/codec.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;
using sql602::msg;

std::string tunnel_config(std::uint16_t portbase, const std::string& rule_to = "[\"backend:sql\"]",
                          const std::string& limits = "idle_timeout: 10s") {
  return R"(
listeners:
  - name: test
    bind: "127.0.0.1:0"
    protocols: [http, socks5, socks4]
    sql602_tunnel: sql
backends:
  - name: sql
    host: 127.0.0.1
    portbase: )" +
         std::to_string(portbase) + R"(
    kind: sql602
rules:
  - name: to-sql
    action: allow
    from: ["127.0.0.0/8"]
    to: )" +
         rule_to + R"(
limits: {handshake_timeout: 2s, connect_timeout: 2s, )" +
         limits + R"(, shutdown_grace: 1s}
log: {level: error, access: off}
)";
}

bytes operator+(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const bytes version_payload{0x00, 0x00, 0x0B, 0x00};

TEST(Sql602Tunnel, WorkedExampleByteForByte) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  // docs/602sql.md, HTTP leg: DT_VERSION and the keep-alive DT_REQUEST back to back.
  c.send(to_bytes("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
  c.send(bytes{0xF1, 0x00, 0x00, 0x0B, 0x00});
  c.send(bytes{0x50, 0x4F, 0x53, 0x54, 0x20, 0x2F, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2F, 0x31, 0x2E,
               0x31, 0x0D, 0x0A, 0x43, 0x6F, 0x6E, 0x74, 0x65, 0x6E, 0x74, 0x2D, 0x4C, 0x65, 0x6E,
               0x67, 0x74, 0x68, 0x3A, 0x20, 0x33, 0x0D, 0x0A, 0x0D, 0x0A, 0xFF, 0x35, 0x35});
  const bytes expected{0x48, 0x54, 0x54, 0x50, 0x2F, 0x31, 0x2E, 0x31, 0x20, 0x32, 0x30, 0x30, 0x20, 0x4F,
                       0x4B, 0x0D, 0x0A, 0x43, 0x6F, 0x6E, 0x74, 0x65, 0x6E, 0x74, 0x2D, 0x4C, 0x65, 0x6E,
                       0x67, 0x74, 0x68, 0x3A, 0x20, 0x34, 0x0D, 0x0A, 0x0D, 0x0A, 0xFE, 0x00, 0x00, 0x00};
  EXPECT_EQ(c.read_exact(expected.size()), expected);
  c.send(sql602::raw_close_frame());
  // Native leg: the server saw exactly DT_VERSION, DT_REQUEST and DT_CLOSE_CON, one frame each.
  const auto got = db.wait_received(0, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], (msg{0xF1, version_payload}));
  EXPECT_EQ(got[1], (msg{0xFF, bytes{0x35, 0x35}}));
  EXPECT_EQ(got[2], (msg{0xEE, bytes{}}));
  // The server's answering DT_CLOSE_CON is dropped and the client connection closes.
  EXPECT_TRUE(c.closed_within(3s));
  EXPECT_TRUE(db.wait_closed(0));
}

TEST(Sql602Tunnel, ManyExchangesKeepIntegrity) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  for (std::uint32_t i = 0; i < 300; ++i) {
    const std::size_t size = 1 + (i * 7919) % (i % 10 == 0 ? 70000 : 600);
    bytes payload = pattern(size, i);
    payload[0] = 'x';
    t.post(sql602::request, payload);
    bytes answer{0x00, 0x00, 0x00};
    answer.insert(answer.end(), payload.begin(), payload.end());
    const msg m = t.read_response();
    ASSERT_EQ(m.type, sql602::answer) << "exchange " << i;
    ASSERT_EQ(m.payload, answer) << "exchange " << i;
  }
  const auto got = db.wait_received(0, 301);
  ASSERT_EQ(got.size(), 301u);
  EXPECT_EQ(got[0].type, sql602::version);
}

TEST(Sql602Tunnel, PipelinedPostsInOneWriteAndSplitAnywhere) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  bytes all = sql602::tunnel_post(sql602::version, version_payload);
  std::vector<bytes> payloads;
  for (std::uint32_t i = 0; i < 20; ++i) {
    bytes p = pattern(100 + i * 37, i + 1000);
    p[0] = 'y';
    payloads.push_back(p);
    const bytes post = sql602::tunnel_post(sql602::request, p);
    all.insert(all.end(), post.begin(), post.end());
  }
  // Byte-sized writes first, then the rest in one go.
  for (std::size_t i = 0; i < 60; ++i) c.send(bytes{all[i]});
  c.send(bytes(all.begin() + 60, all.end()));
  for (const auto& p : payloads) {
    bytes answer{0x00, 0x00, 0x00};
    answer.insert(answer.end(), p.begin(), p.end());
    const bytes expected = sql602::tunnel_response(sql602::answer, answer);
    ASSERT_EQ(c.read_exact(expected.size()), expected);
  }
}

TEST(Sql602Tunnel, ProgressMessagesGiveSeveralResponsesPerRequest) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  t.post(sql602::request, bytes{'N', 2});
  EXPECT_EQ(t.read_response(), (msg{sql602::nums, bytes{0, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(t.read_response(), (msg{sql602::nums, bytes{1, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(t.read_response(), (msg{sql602::answer, bytes{0, 0, 0, 'N', 2}}));
}

TEST(Sql602Tunnel, SplitServerMessageBecomesOneResponse) {
  sql602::server db(sql602::server_options{.split_above = 16000});
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  c.send(sql602::tunnel_post(sql602::version, version_payload));
  bytes p = pattern(19997, 7);
  p[0] = 'z';
  c.send(sql602::tunnel_post(sql602::request, p));
  bytes answer{0x00, 0x00, 0x00};
  answer.insert(answer.end(), p.begin(), p.end());
  ASSERT_EQ(answer.size(), 20000u);
  // docs/602sql.md: two frames (16000 + 4000 payload bytes, msg_total 20000), one response.
  const bytes expected = sql602::tunnel_response(sql602::answer, answer);
  EXPECT_EQ(to_text(bytes(expected.begin(), expected.begin() + 42)),
            "HTTP/1.1 200 OK\r\nContent-Length: 20001\r\n\r\n");
  EXPECT_EQ(c.read_exact(expected.size()), expected);
}

TEST(Sql602Tunnel, UnsolicitedMessagesAndServerDown) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  ASSERT_EQ(db.wait_received(0, 1).size(), 1u);
  // No POST outstanding: the broadcast and the shutdown warning still reach the client at once.
  db.push(0, sql602::message, to_bytes("hello from another session"));
  EXPECT_EQ(t.read_response(), (msg{sql602::message, to_bytes("hello from another session")}));
  db.push(0, sql602::serverdown, {});
  EXPECT_EQ(t.read_raw(40), to_bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\xF6") + bytes{0x00});
  // A keep-alive frame from the server is dropped; the next answer still arrives.
  db.push(0, sql602::keepalive, {});
  t.post(sql602::request, bytes{0x35, 0x35});
  EXPECT_EQ(t.read_response(), (msg{sql602::answer, bytes{0, 0, 0}}));
}

TEST(Sql602Tunnel, ServerCloseConClosesTheClient) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  ASSERT_EQ(db.wait_received(0, 1).size(), 1u);
  db.push(0, sql602::answer, bytes{1, 2, 3});
  db.push(0, sql602::close_con, {});
  EXPECT_EQ(t.read_response(), (msg{sql602::answer, bytes{1, 2, 3}}));
  EXPECT_TRUE(t.closed_within(3s));
}

TEST(Sql602Tunnel, ServerDisconnectClosesTheClient) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  ASSERT_EQ(db.wait_received(0, 1).size(), 1u);
  db.drop(0);
  EXPECT_TRUE(t.closed_within(3s));
}

TEST(Sql602Tunnel, ClientEofSendsCloseConToTheServer) {
  sql602::server db(sql602::server_options{.answer_close_con = false});
  gateway gw(tunnel_config(db.portbase()));
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  t.raw().shutdown_send();
  const auto got = db.wait_received(0, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], (msg{sql602::close_con, {}}));
  EXPECT_TRUE(db.wait_closed(0));
  EXPECT_TRUE(t.closed_within(3s));
}

TEST(Sql602Tunnel, RefusingServerGivesTheStockErrorAnswer) {
  sql602::server db(sql602::server_options{.connect_result = 45});
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  c.send(sql602::tunnel_post(sql602::version, version_payload));
  // FE u16(500 + 45) 00, docs/602sql.md / 6.2 step 4.
  const bytes expected = to_bytes("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n") + bytes{0xFE, 0x21, 0x02, 0x00};
  EXPECT_EQ(expected, tunnel::sql602::connect_failure_reply(45, true));
  EXPECT_EQ(c.read_to_eof(), expected);
}

TEST(Sql602Tunnel, UnreachableBackendGivesKseConnection) {
  std::uint16_t closed_port = 0;
  {
    sql602::server gone;
    closed_port = gone.port();
  }
  gateway gw(tunnel_config(static_cast<std::uint16_t>(closed_port - 1)));
  client c(gw.endpoint());
  c.send(sql602::tunnel_post(sql602::version, version_payload));
  const bytes expected = to_bytes("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n") + bytes{0xFE, 0x03, 0x02, 0x00};
  EXPECT_EQ(c.read_to_eof(), expected);
}

TEST(Sql602Tunnel, DeniedBackendGivesKseIpFilterAndNoConnection) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase(), "[\"10.0.0.0/8\"]"));
  client c(gw.endpoint());
  c.send(sql602::tunnel_post(sql602::version, version_payload));
  EXPECT_EQ(c.read_to_eof(), tunnel::sql602::connect_failure_reply(tunnel::sql602::kse_ip_filter, true));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(db.sessions(), 0u);
}

TEST(Sql602Tunnel, ServerThatDoesNotSendConnectResultTimesOut) {
  sql602::server db(sql602::server_options{.send_connect_result = false});
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  c.send(sql602::tunnel_post(sql602::version, version_payload));
  EXPECT_EQ(c.read_to_eof(), tunnel::sql602::connect_failure_reply(tunnel::sql602::kse_connection, true));
}

TEST(Sql602Tunnel, OtherMethodAfterTheFirstPostIs405AndCloses) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  c.send(sql602::tunnel_post(sql602::version, version_payload));
  ASSERT_EQ(db.wait_received(0, 1).size(), 1u);
  c.send(std::string("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(to_text(c.read_to_eof()), "HTTP/1.1 405 Method not allowed\r\n\r\n");
  // The server hears that the client is gone.
  const auto got = db.wait_received(0, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].type, sql602::close_con);
}

TEST(Sql602Tunnel, EmptyOrLowTypePostIs450) {
  for (const std::string& bad : {std::string("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
                                 std::string("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n\x01\x02"),
                                 std::string("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")}) {
    sql602::server db;
    gateway gw(tunnel_config(db.portbase()));
    client c(gw.endpoint());
    c.send(sql602::tunnel_post(sql602::version, version_payload));
    ASSERT_EQ(db.wait_received(0, 1).size(), 1u);
    c.send(bad);
    EXPECT_EQ(to_text(c.read_to_eof()), "HTTP/1.1 450 Bad Request\r\nContent-Length: 0\r\n\r\n") << bad;
  }
}

TEST(Sql602Tunnel, OversizedHeaderIs450) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  c.send(sql602::tunnel_post(sql602::version, version_payload));
  ASSERT_EQ(db.wait_received(0, 1).size(), 1u);
  c.send("POST / HTTP/1.1\r\nX-Pad: " + std::string(9000, 'a') + "\r\nContent-Length: 2\r\n\r\n\xFF\x01");
  EXPECT_EQ(to_text(c.read_to_eof()), "HTTP/1.1 450 Bad Request\r\nContent-Length: 0\r\n\r\n");
}

TEST(Sql602Tunnel, IdleTunnelIsClosedAndTheServerHearsCloseCon) {
  sql602::server db(sql602::server_options{.answer_close_con = false});
  gateway gw(tunnel_config(db.portbase(), "[\"backend:sql\"]", "idle_timeout: 300ms"));
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  EXPECT_TRUE(t.closed_within(3s));
  const auto got = db.wait_received(0, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].type, sql602::close_con);
}

TEST(Sql602Tunnel, PostWithALowFirstByteIsNotATunnel) {
  sql602::server db;
  gateway gw(tunnel_config(db.portbase()));
  client c(gw.endpoint());
  c.send(std::string("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"));
  // Not a tunnel: a request to the gateway itself, so the fallback's 404.
  const std::string reply = to_text(c.read_to_eof());
  EXPECT_EQ(reply.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << reply;
  EXPECT_EQ(db.sessions(), 0u);
}

TEST(Sql602Tunnel, SocksAndTunnelShareTheListener) {
  sql602::server db;
  backend echo(backend_mode::echo);
  gateway gw(tunnel_config(db.portbase(), "[\"backend:sql\", \"127.0.0.0/8\"]"));
  client s(gw.endpoint());
  const bytes reply = socks5_connect(s, echo.endpoint());
  ASSERT_EQ(reply[1], 0x00);
  sql602::tunnel_client t(gw.endpoint());
  t.post(sql602::version, version_payload);
  t.post(sql602::request, bytes{0x35, 0x35});
  EXPECT_EQ(t.read_response(), (msg{sql602::answer, bytes{0, 0, 0}}));
  s.send(std::string("still here"));
  EXPECT_EQ(to_text(s.read_exact(10)), "still here");
}

}  // namespace
}  // namespace edgerelay::testing
