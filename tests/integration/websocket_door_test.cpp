// The gateway's WebSocket door with a Beast client: bulk integrity both ways, half-close each way,
// the refusals (403, 401, 400, 404, 502), pings, the idle deadline, control-message errors and the
// reload recheck that ends a live session.
#include <gtest/gtest.h>

#include <thread>

#include "config/password.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/websocket_support.hpp"
#include "tunnel/basic_auth.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

std::string ws_config(const std::string& rules, const std::string& limits = "idle_timeout: 30s", bool recheck = false) {
  static const std::string hash = config::hash_password("s3cret", 1000);
  return R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [http, websocket]}
  - {name: locked, bind: "127.0.0.1:0", protocols: [websocket], auth: password, websocket_path: /t/in}
users:
  - {name: alice, password: ")" +
         hash + R"("}
rules:
)" + rules +
         R"(
  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}
limits: {handshake_timeout: 2s, connect_timeout: 2s, shutdown_grace: 1s, )" +
         limits + R"(}
reload: {recheck_sessions: )" +
         (recheck ? "true" : "false") + R"(}
log: {level: error, access: off}
)";
}

const std::string deny_three = "  - {name: no-three, action: deny, to: [\"127.0.0.3\"]}\n";

std::string target_of(const tcp::endpoint& e) {
  return "/edgerelay?target=" + e.address().to_string() + ":" + std::to_string(e.port());
}

TEST(WebSocketDoor, SixtyFourMiBEachWayArriveIntactAndBothFinsCloseWith1000) {
  backend echo(backend_mode::echo);
  gateway gw(ws_config(""));
  ws_client c(gw.endpoint(), target_of(echo.endpoint()));
  ASSERT_FALSE(c.handshake_ec) << c.handshake_ec.message();
  EXPECT_EQ(c.status(), 101);
  EXPECT_EQ(c.header("Sec-WebSocket-Protocol"), "edgerelay.v1");

  const bytes payload = pattern(64u << 20, 7);
  ws_client::received got;
  int close_code = -1;
  c.run([&]() -> net::awaitable<void> {
    net::co_spawn(
        c.io,
        [&]() -> net::awaitable<void> {
          co_await c.send_bytes(payload, 100 * 1024);  // larger than the gateway's own messages
          co_await c.send_fin();
        },
        net::detached);
    got = co_await c.read_until_fin();
    close_code = co_await c.read_close();
  });
  EXPECT_TRUE(got.fin);
  ASSERT_EQ(got.bytes.size(), payload.size());
  EXPECT_TRUE(got.bytes == payload);
  EXPECT_LE(got.largest_message, 16u * 1024) << "the gateway sends at most 16 KiB per message";
  EXPECT_EQ(close_code, 1000);
}

TEST(WebSocketDoor, ClientFinReachesTheBackendAsEndOfStream) {
  backend b(backend_mode::reply_after_eof);
  gateway gw(ws_config(""));
  ws_client c(gw.endpoint(), target_of(b.endpoint()));
  ASSERT_FALSE(c.handshake_ec);
  ws_client::received got;
  int close_code = -1;
  c.run([&]() -> net::awaitable<void> {
    co_await c.send_bytes(pattern(5000, 1));
    co_await c.send_fin();
    got = co_await c.read_until_fin();  // the backend answers only after our end of stream
    close_code = co_await c.read_close();
  });
  EXPECT_EQ(to_text(got.bytes), "got 5000 bytes");
  EXPECT_TRUE(got.fin);
  EXPECT_EQ(close_code, 1000);
}

TEST(WebSocketDoor, BackendHalfCloseArrivesAsFinAndTheClientKeepsSending) {
  backend b(backend_mode::close_then_read);
  gateway gw(ws_config(""));
  ws_client c(gw.endpoint(), target_of(b.endpoint()));
  ASSERT_FALSE(c.handshake_ec);
  ws_client::received got;
  int close_code = -1;
  c.run([&]() -> net::awaitable<void> {
    got = co_await c.read_until_fin();
    co_await c.send_bytes(pattern(1234, 2));  // after the gateway's fin, our direction goes on
    co_await c.send_fin();
    close_code = co_await c.read_close();
  });
  EXPECT_EQ(to_text(got.bytes), "BYE\n");
  EXPECT_TRUE(got.fin);
  EXPECT_EQ(close_code, 1000);
  for (int i = 0; i < 50 && b.received_after_close().empty(); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(b.received_after_close(), std::vector<std::size_t>{1234});
}

TEST(WebSocketDoor, ClientOfferingNoSubprotocolIsAcceptedWithoutOne) {
  backend echo(backend_mode::echo);
  gateway gw(ws_config(""));
  ws_client c(gw.endpoint(), target_of(echo.endpoint()), {}, std::nullopt);
  ASSERT_FALSE(c.handshake_ec);
  EXPECT_EQ(c.header("Sec-WebSocket-Protocol"), "");
  ws_client::received got;
  c.run([&]() -> net::awaitable<void> {
    co_await c.send_bytes(to_bytes("ping?"));
    got = co_await c.read_until_fin(5);
  });
  EXPECT_EQ(to_text(got.bytes), "ping?");
}

TEST(WebSocketDoor, RefusalsCarryTheStatusTheResultAndNoStore) {
  backend echo(backend_mode::echo);
  backend three(backend_mode::echo, "127.0.0.3");
  gateway gw(ws_config(deny_three));
  struct expectation {
    std::string target;
    unsigned status;
    std::string result;
  };
  const std::vector<expectation> cases{
      {target_of(three.endpoint()), 403, "denied"},
      {"/edgerelay?target=127.0.0.1:" + std::to_string(closed_port()), 502, "refused"},
      {"/edgerelay?target=bad%25name:80", 400, "malformed"},
      {"/edgerelay?target=no-port", 400, "malformed"},
      {"/edgerelay", 400, "malformed"},
      {"/edgerelay?target=backend:nosuch", 400, "malformed"},
      {"/elsewhere?target=127.0.0.1:80", 404, "malformed"},
  };
  for (const auto& want : cases) {
    ws_client c(gw.endpoint(), want.target);
    EXPECT_EQ(c.status(), want.status) << want.target;
    EXPECT_EQ(c.header("Edgerelay-Result"), want.result) << want.target;
    EXPECT_EQ(c.header("Cache-Control"), "no-store") << want.target;
    EXPECT_FALSE(c.response.body().empty()) << want.target;
  }
}

TEST(WebSocketDoor, PasswordListenerAnswers401UntilBasicCredentialsAreRight) {
  backend echo(backend_mode::echo);
  gateway gw(ws_config(""));
  const std::string target = "/t/in?target=127.0.0.1:" + std::to_string(echo.port());
  {
    ws_client c(gw.endpoint("locked"), target);
    EXPECT_EQ(c.status(), 401);
    EXPECT_EQ(c.header("WWW-Authenticate"), "Basic realm=\"edgerelay\"");
  }
  {
    ws_client c(gw.endpoint("locked"), target, {{"Authorization", tunnel::encode_basic_auth("alice", "wrong")}});
    EXPECT_EQ(c.status(), 401);
  }
  {
    // Proxy-Authorization is the proxy's: the gateway wants Authorization.
    ws_client c(gw.endpoint("locked"), target, {{"Proxy-Authorization", tunnel::encode_basic_auth("alice", "s3cret")}});
    EXPECT_EQ(c.status(), 401);
  }
  ws_client c(gw.endpoint("locked"), target, {{"Authorization", tunnel::encode_basic_auth("alice", "s3cret")}});
  ASSERT_EQ(c.status(), 101);
  ws_client::received got;
  c.run([&]() -> net::awaitable<void> {
    co_await c.send_bytes(to_bytes("hello"));
    got = co_await c.read_until_fin(5);
  });
  EXPECT_EQ(to_text(got.bytes), "hello");
}

TEST(WebSocketDoor, BackendByNameAndTheWebSocketOnlyListenerRefusesPlainHttp) {
  backend echo(backend_mode::echo);
  const std::string backends =
      "backends:\n  - {name: svc, host: 127.0.0.1, portbase: " + std::to_string(echo.port() - 1) + "}\n";
  gateway gw(ws_config("  - {name: svc, action: allow, to: [\"backend:svc\"]}\n") + backends);
  ws_client c(gw.endpoint(), "/edgerelay?target=backend:svc");
  ASSERT_EQ(c.status(), 101);
  ws_client::received got;
  c.run([&]() -> net::awaitable<void> {
    co_await c.send_bytes(to_bytes("named"));
    got = co_await c.read_until_fin(5);
  });
  EXPECT_EQ(to_text(got.bytes), "named");

  client plain(gw.endpoint("locked"));
  plain.send(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string answer = to_text(plain.read_to_eof());
  EXPECT_EQ(answer.rfind("HTTP/1.1 426 ", 0), 0u) << answer;
}

TEST(WebSocketDoor, BytesBeforeThe101AreRefused) {
  backend echo(backend_mode::echo);
  gateway gw(ws_config(""));
  client raw(gw.endpoint());
  raw.send("GET " + target_of(echo.endpoint()) +
           " HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x82\x80....");
  const std::string answer = to_text(raw.read_to_eof());
  EXPECT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("before the 101"), std::string::npos) << answer;
}

TEST(WebSocketDoor, PingsAreAnsweredDuringTheSession) {
  backend echo(backend_mode::echo);
  gateway gw(ws_config(""));
  ws_client c(gw.endpoint(), target_of(echo.endpoint()));
  ASSERT_FALSE(c.handshake_ec);
  int pongs = 0;
  c.ws.control_callback([&pongs](websocket::frame_type kind, boost::beast::string_view payload) {
    if (kind == websocket::frame_type::pong && payload == "are you there") ++pongs;
  });
  ws_client::received got;
  c.run([&]() -> net::awaitable<void> {
    co_await c.ws.async_ping("are you there", net::use_awaitable);
    co_await c.send_bytes(to_bytes("after the ping"));
    got = co_await c.read_until_fin(14);
  });
  EXPECT_EQ(pongs, 1);
  EXPECT_EQ(to_text(got.bytes), "after the ping");
}

TEST(WebSocketDoor, UnknownControlOpClosesWith1008) {
  backend echo(backend_mode::echo);
  gateway gw(ws_config(""));
  ws_client c(gw.endpoint(), target_of(echo.endpoint()));
  ASSERT_FALSE(c.handshake_ec);
  ws_client::received got;
  c.run([&]() -> net::awaitable<void> {
    co_await c.send_text(R"({"op":"teleport"})");
    got = co_await c.read_until_fin();
  });
  EXPECT_EQ(got.end, websocket::error::closed);
  EXPECT_EQ(c.ws.reason().code, 1008);
}

TEST(WebSocketDoor, IdleSessionEndsAtTheIdleTimeoutWith1011) {
  backend echo(backend_mode::echo);
  gateway gw(ws_config("", "idle_timeout: 1s"));
  ws_client c(gw.endpoint(), target_of(echo.endpoint()));
  ASSERT_FALSE(c.handshake_ec);
  ws_client::received got;
  const auto start = std::chrono::steady_clock::now();
  c.run([&]() -> net::awaitable<void> { got = co_await c.read_until_fin(); }, 10s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 5s);
  EXPECT_TRUE(got.end) << "the session ended";
  // The close frame came first (the connection is closed right behind it, so the client's own
  // close reply may fail).
  EXPECT_EQ(c.ws.reason().code, 1011);
}

TEST(WebSocketDoor, ReloadRecheckClosesASessionTheNewRulesDeny) {
  backend three(backend_mode::echo, "127.0.0.3");
  config_file file(ws_config("", "idle_timeout: 30s", true));
  auto gw = gateway::from_file(file.path());
  ws_client c(gw->endpoint(), target_of(three.endpoint()));
  ASSERT_FALSE(c.handshake_ec);
  ws_client::received first;
  c.run([&]() -> net::awaitable<void> {
    co_await c.send_bytes(to_bytes("before"));
    first = co_await c.read_until_fin(6);
  });
  ASSERT_EQ(to_text(first.bytes), "before");
  file.write(ws_config(deny_three, "idle_timeout: 30s", true));
  gw->server().reload();
  ws_client::received got;
  c.run([&]() -> net::awaitable<void> { got = co_await c.read_until_fin(); }, 10s);
  EXPECT_FALSE(got.fin);
  EXPECT_TRUE(got.end);
  EXPECT_EQ(c.ws.reason().code, 1001);
}

}  // namespace
}  // namespace edgerelay::testing
