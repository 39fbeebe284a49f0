// The client's WebSocket transport against the gateway's WebSocket door, over a direct route
// (plain TCP and TLS): integrity both ways, half-close each way, refusals mapped to outcomes with
// the hop and status, in-band breaks that leave the stream intact, and the keepalive: pings keep
// an idle session up, a gateway that stops answering ends it at once.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/websocket.hpp>

#include "config/password.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/outbound/gateway/websocket_transport.hpp"
#include "tests/integration/harness.hpp"
#include "tests/support/test_certs.hpp"
#include "tunnel/basic_auth.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;
using proxy::outcome;
using proxy::phase_deadline;
namespace gw_ns = proxy::gateway;

/// Straight to the gateway, with TLS when `tls` is set.
class direct_route final : public gw_ns::gateway_route {
 public:
  explicit direct_route(tcp::endpoint gw, std::shared_ptr<net::ssl::context> tls = nullptr)
      : gw_(gw), tls_(std::move(tls)) {}

  net::awaitable<gw_ns::route_connection> connect(phase_deadline& dl) const override {
    gw_ns::route_connection out;
    out.style.authority = "gw.test:" + std::to_string(gw_.port());
    tcp::socket s(co_await net::this_coro::executor);
    auto [ec] = co_await s.async_connect(gw_, dl.token());
    if (ec) {
      out.result = outcome::connection_refused;
      out.failed_hop = "gateway";
      out.detail = ec.message();
      co_return out;
    }
    tunnel::client_stream stream(std::move(s));
    if (tls_) {
      if (const error_code tls_ec = co_await stream.connect_tls(*tls_, "gw.test", dl.slot()); tls_ec) {
        out.result = outcome::backend_tls_failed;
        out.failed_hop = "tls_verify";
        out.detail = tls_ec.message();
        co_return out;
      }
    }
    out.result = outcome::success;
    out.stream.emplace(std::move(stream));
    co_return out;
  }

 private:
  tcp::endpoint gw_;
  std::shared_ptr<net::ssl::context> tls_;
};

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

std::string transport_config(const std::string& tls) {
  static const std::string hash = config::hash_password("s3cret", 1000);
  return R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [websocket])" +
         (tls.empty() ? "" : ", " + tls) + R"(}
  - {name: locked, bind: "127.0.0.1:0", protocols: [websocket], auth: password}
users:
  - {name: alice, password: ")" +
         hash + R"("}
rules:
  - {name: no-three, action: deny, to: ["127.0.0.3"]}
  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 1s}
log: {level: error, access: off}
)";
}

const test::test_certs& certs() {
  const auto& c = test::get_test_certs();
  if (!c.error.empty()) throw std::runtime_error("test certificates: " + c.error);
  return c;
}

/// Runs `body` on a fresh io_context in this thread until it returns (bounded).
template <class T>
T run(std::function<net::awaitable<T>()> body, std::chrono::seconds limit = 60s) {
  net::io_context io;
  std::promise<T> done;
  auto result = done.get_future();
  net::co_spawn(io, body(), [&done](std::exception_ptr e, T value) {
    if (e) {
      done.set_exception(e);
    } else {
      done.set_value(std::move(value));
    }
  });
  io.run_for(limit);
  if (result.wait_for(0s) != std::future_status::ready) throw std::runtime_error("transport test did not finish");
  return result.get();
}

/// Opens a tunnel under a 2 s phase.
net::awaitable<gw_ns::opened_tunnel> open_tunnel(const gw_ns::websocket_transport& t, const gw_ns::gateway_route& r,
                                                 gw_ns::tunnel_request what) {
  co_return co_await proxy::with_phase_deadline(co_await net::this_coro::executor,
                                                [&](phase_deadline& dl) -> net::awaitable<gw_ns::opened_tunnel> {
                                                  dl.start(2s);
                                                  auto opened = co_await t.open(r, what, dl);
                                                  dl.stop();
                                                  co_return opened;
                                                });
}

gw_ns::websocket_options pinging(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
  gw_ns::websocket_options o;
  o.ping_interval = interval;
  o.ping_timeout = timeout;
  return o;
}

gw_ns::tunnel_request ask(std::string target, bool udp = false) {
  return gw_ns::tunnel_request{.target = std::move(target), .udp = udp, .authorization = ""};
}

gw_ns::tunnel_request to(const tcp::endpoint& e, std::string authorization = "") {
  return gw_ns::tunnel_request{.target = e.address().to_string() + ":" + std::to_string(e.port()),
                               .udp = false,
                               .authorization = std::move(authorization)};
}

/// Reads from `leg` until eof (or an error, returned).
net::awaitable<error_code> read_to_eof(proxy::message_leg& leg, bytes& out) {
  std::vector<std::uint8_t> buf(32 * 1024);
  for (;;) {
    auto [ec, n] = co_await leg.read_some(net::buffer(buf));
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (ec == net::error::eof) co_return error_code{};
    if (ec) co_return ec;
  }
}

/// Writes `payload` in pieces, then half-closes; reads the echo to eof at the same time.
net::awaitable<bool> echo_through(proxy::message_leg& leg, const bytes& payload, bytes& echoed, error_code& read_ec) {
  bool wrote = false;
  net::co_spawn(
      co_await net::this_coro::executor,
      [&]() -> net::awaitable<void> {
        for (std::size_t at = 0; at < payload.size(); at += 50000) {
          const std::size_t n = std::min<std::size_t>(50000, payload.size() - at);
          auto [ec, w] = co_await leg.write(net::buffer(payload.data() + at, n));
          if (ec || w != n) co_return;
        }
        wrote = !(co_await leg.shutdown_send());
      },
      net::detached);
  read_ec = co_await read_to_eof(leg, echoed);
  co_return wrote;
}

TEST(WebSocketTransport, PlainTcpCarriesEightMiBEachWayAndHalfCloses) {
  backend echo(backend_mode::echo);
  gateway gw(transport_config(""));
  const direct_route route(gw.endpoint());
  const gw_ns::websocket_transport transport;
  const bytes payload = pattern(8u << 20, 3);
  bytes echoed;
  error_code read_ec;
  const bool wrote = run<bool>([&]() -> net::awaitable<bool> {
    auto opened = co_await open_tunnel(transport, route, to(echo.endpoint()));
    if (opened.result != outcome::success) {
      ADD_FAILURE() << opened.failed_hop << ": " << opened.detail;
      co_return false;
    }
    const bool ok = co_await echo_through(*opened.leg, payload, echoed, read_ec);
    opened.leg->close();
    co_return ok;
  });
  EXPECT_TRUE(wrote);
  EXPECT_FALSE(read_ec) << read_ec.message();
  ASSERT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload);
}

TEST(WebSocketTransport, TlsToTheGatewayCarriesBytesAndTheBackendsHalfClose) {
  backend echo(backend_mode::echo);
  backend closing(backend_mode::close_then_read);
  const auto& c = certs();
  gateway gw(transport_config("tls: {cert: " + quoted(c.server.cert) + ", key: " + quoted(c.server.key) + "}"));
  auto client_tls = tunnel::make_client_context(config::backend_tls{.ca = c.ca, .server_name = "gw.test"});
  ASSERT_TRUE(client_tls.context) << client_tls.error;
  const direct_route route(gw.endpoint(), client_tls.context);
  const gw_ns::websocket_transport transport;
  const bytes payload = pattern(2u << 20, 4);
  bytes echoed;
  error_code read_ec;
  EXPECT_TRUE(run<bool>([&]() -> net::awaitable<bool> {
    auto opened = co_await open_tunnel(transport, route, to(echo.endpoint()));
    if (opened.result != outcome::success) {
      ADD_FAILURE() << opened.failed_hop << ": " << opened.detail;
      co_return false;
    }
    const bool ok = co_await echo_through(*opened.leg, payload, echoed, read_ec);
    opened.leg->close();
    co_return ok;
  }));
  EXPECT_FALSE(read_ec) << read_ec.message();
  EXPECT_TRUE(echoed == payload);

  // The backend ends its direction first: the leg reads eof and can still send.
  bytes bye;
  EXPECT_TRUE(run<bool>([&]() -> net::awaitable<bool> {
    auto opened = co_await open_tunnel(transport, route, to(closing.endpoint()));
    if (opened.result != outcome::success) co_return false;
    if (co_await read_to_eof(*opened.leg, bye)) co_return false;
    const bytes more = pattern(777, 5);
    auto [ec, n] = co_await opened.leg->write(net::buffer(more));
    const error_code shut = co_await opened.leg->shutdown_send();
    opened.leg->close();
    co_return !ec && n == more.size() && !shut;
  }));
  EXPECT_EQ(to_text(bye), "BYE\n");
  for (int i = 0; i < 50 && closing.received_after_close().empty(); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(closing.received_after_close(), std::vector<std::size_t>{777});
}

TEST(WebSocketTransport, RefusedUpgradesMapToOutcomesAtTheUpgradeHop) {
  backend echo(backend_mode::echo);
  backend three(backend_mode::echo, "127.0.0.3");
  gateway gw(transport_config(""));
  const gw_ns::websocket_transport transport;
  struct expectation {
    tcp::endpoint gateway;
    gw_ns::tunnel_request what;
    outcome result;
    std::string status;
  };
  const std::vector<expectation> cases{
      {gw.endpoint(), to(three.endpoint()), outcome::denied, "status 403"},
      {gw.endpoint(), to(tcp::endpoint(net::ip::make_address("127.0.0.1"), closed_port())), outcome::host_unreachable,
       "status 502"},
      {gw.endpoint("locked"), to(echo.endpoint()), outcome::bad_credentials, "status 401"},
      {gw.endpoint("locked"), to(echo.endpoint(), tunnel::encode_basic_auth("alice", "nope")), outcome::bad_credentials,
       "status 401"},
  };
  for (const auto& want : cases) {
    const direct_route route(want.gateway);
    const auto opened = run<gw_ns::opened_tunnel>(
        [&]() -> net::awaitable<gw_ns::opened_tunnel> { co_return co_await open_tunnel(transport, route, want.what); });
    EXPECT_EQ(opened.result, want.result) << want.what.target;
    EXPECT_EQ(opened.failed_hop, "upgrade");
    EXPECT_EQ(opened.detail.rfind(want.status, 0), 0u) << opened.detail;
    EXPECT_EQ(opened.leg, nullptr);
  }
  // The right password opens it.
  const direct_route locked(gw.endpoint("locked"));
  const auto opened = run<gw_ns::opened_tunnel>([&]() -> net::awaitable<gw_ns::opened_tunnel> {
    auto o = co_await open_tunnel(transport, locked, to(echo.endpoint(), tunnel::encode_basic_auth("alice", "s3cret")));
    o.leg.reset();  // the leg lives on its io_context, which ends with run()
    co_return o;
  });
  EXPECT_EQ(opened.result, outcome::success) << opened.detail;
}

TEST(WebSocketTransport, BreaksGoInBandBetweenMessagesAndTheStreamStaysIntact) {
  backend echo(backend_mode::echo);
  gateway gw(transport_config(""));
  const direct_route route(gw.endpoint());
  const gw_ns::websocket_transport transport;
  const bytes payload = pattern(1u << 20, 9);
  bytes echoed;
  error_code read_ec;
  EXPECT_TRUE(run<bool>([&]() -> net::awaitable<bool> {
    auto opened = co_await open_tunnel(transport, route, to(echo.endpoint()));
    if (opened.result != outcome::success) co_return false;
    auto& leg = dynamic_cast<gw_ns::gateway_leg&>(*opened.leg);
    leg.send_break();  // no write under way: sent at once
    bool wrote = false;
    net::co_spawn(
        co_await net::this_coro::executor,
        [&]() -> net::awaitable<void> {
          for (std::size_t at = 0; at < payload.size(); at += 100000) {
            leg.send_break();  // queued behind the write under way, or sent by itself
            const std::size_t n = std::min<std::size_t>(100000, payload.size() - at);
            auto [ec, w] = co_await leg.write(net::buffer(payload.data() + at, n));
            if (ec) co_return;
          }
          wrote = !(co_await leg.shutdown_send());
        },
        net::detached);
    read_ec = co_await read_to_eof(leg, echoed);
    leg.close();
    co_return wrote;
  }));
  EXPECT_FALSE(read_ec) << read_ec.message();
  EXPECT_TRUE(echoed == payload);
}

TEST(WebSocketTransport, PingsKeepAQuietSessionUp) {
  backend echo(backend_mode::echo);
  gateway gw(transport_config(""));
  const direct_route route(gw.endpoint());
  const gw_ns::websocket_transport transport(pinging(100ms, 300ms));
  bytes got;
  error_code read_ec;
  EXPECT_TRUE(run<bool>([&]() -> net::awaitable<bool> {
    auto opened = co_await open_tunnel(transport, route, to(echo.endpoint()));
    if (opened.result != outcome::success) co_return false;
    net::co_spawn(
        co_await net::this_coro::executor,
        [&]() -> net::awaitable<void> {
          net::steady_timer quiet(co_await net::this_coro::executor, 1500ms);  // five pings' worth
          co_await quiet.async_wait(use_ec);
          const bytes late = to_bytes("late");
          co_await opened.leg->write(net::buffer(late));
          co_await opened.leg->shutdown_send();
        },
        net::detached);
    read_ec = co_await read_to_eof(*opened.leg, got);
    opened.leg->close();
    co_return true;
  }));
  EXPECT_FALSE(read_ec) << read_ec.message();
  EXPECT_EQ(to_text(got), "late");
}

TEST(WebSocketTransport, AGatewayThatStopsAnsweringPingsEndsTheLegAtOnce) {
  // A WebSocket server that accepts, then never reads again: no pong ever comes back.
  std::atomic<bool> accepted{false};
  loopback_server silent([&accepted](tcp::socket s) -> net::awaitable<void> {
    boost::beast::websocket::stream<tcp::socket> ws(std::move(s));
    auto [ec] = co_await ws.async_accept(use_ec);
    accepted = !ec;
    net::steady_timer hold(co_await net::this_coro::executor, 10s);
    co_await hold.async_wait(use_ec);
  });
  const direct_route route(silent.endpoint());
  const gw_ns::websocket_transport transport(pinging(100ms, 200ms));
  const auto start = std::chrono::steady_clock::now();
  const error_code ended = run<error_code>([&]() -> net::awaitable<error_code> {
    auto opened = co_await open_tunnel(transport, route, ask("127.0.0.1:9"));
    if (opened.result != outcome::success) co_return error_code(net::error::not_connected);
    std::array<std::uint8_t, 64> buf;
    auto [ec, n] = co_await opened.leg->read_some(net::buffer(buf));
    opened.leg->close();
    co_return ec;
  });
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(accepted);
  EXPECT_EQ(ended, net::error::timed_out) << ended.message();
  EXPECT_LT(took, 3s);
}

TEST(WebSocketTransport, UpgradeTargetIsPercentEncodedAndAbsoluteForAForwardingProxy) {
  const gw_ns::websocket_options o;
  gw_ns::request_style origin;
  origin.authority = "gw.example.com:443";
  EXPECT_EQ(gw_ns::upgrade_target(o, ask("[2001:db8::7]:22"), origin), "/edgerelay?target=%5B2001:db8::7%5D:22");
  EXPECT_EQ(gw_ns::upgrade_target(o, ask("backend:sql"), origin), "/edgerelay?target=backend:sql");
  EXPECT_EQ(gw_ns::upgrade_target(o, ask("", true), origin), "/edgerelay?udp=1");
  gw_ns::request_style proxied = origin;
  proxied.absolute_form = true;
  EXPECT_EQ(gw_ns::upgrade_target(o, ask("db:5432"), proxied), "http://gw.example.com:443/edgerelay?target=db:5432");
}

}  // namespace
}  // namespace edgerelay::testing
