// PROXY headers on a real gateway over loopback: the header's client drives the rules and
// per_source, a balancer must send one, anyone else must not, LOCAL keeps the real peer, and a
// send_proxy backend reads the client's address first.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "tests/integration/harness.hpp"
#include "tunnel/proxy_protocol_codec.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;
using tunnel::proxy_address;
using tunnel::proxy_header;

/// A blocking client bound to `source` (any 127.x.y.z is on lo), with receive and send timeouts.
class bound_client {
 public:
  bound_client(const tcp::endpoint& gateway, const std::string& source) : socket_(ioc_) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(net::ip::make_address(source), 0));
    socket_.connect(gateway);
    timeval tv{.tv_sec = 5, .tv_usec = 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  void send(const bytes& b) { net::write(socket_, net::buffer(b)); }
  bytes read_exact(std::size_t n) {
    bytes out(n);
    net::read(socket_, net::buffer(out));
    return out;
  }
  /// True when the gateway closed (EOF or reset) without sending a byte.
  bool closed_silently() {
    std::uint8_t b = 0;
    error_code ec;
    const std::size_t n = socket_.read_some(net::buffer(&b, 1), ec);
    return n == 0 && (ec == net::error::eof || ec == net::error::connection_reset);
  }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
};

proxy_address v4(const std::string& text, std::uint16_t port) {
  proxy_address a;
  const auto b = net::ip::make_address_v4(text).to_bytes();
  std::copy(b.begin(), b.end(), a.bytes.begin());
  a.port = port;
  return a;
}

bytes v2_from(const std::string& client, std::uint16_t port = 40000) {
  proxy_header h;
  h.proxied = true;
  h.source = v4(client, port);
  h.destination = v4("198.51.100.1", 1080);
  h.authority = "edge.example.test";
  return tunnel::encode_proxy_v2(h, true);
}

/// A SOCKS5 listener that trusts 127.0.0.1 as its balancer; clients behind it (documentation
/// addresses) are allowed by `from`, everyone else only to what `loopback` allows.
std::string config_for(const std::string& allowed_client, const std::string& limits = "") {
  return R"(
listeners:
  - name: test
    bind: "127.0.0.1:0"
    protocols: [socks5]
    proxy_protocol: {from: [127.0.0.1/32]}
rules:
  - {name: office, action: allow, from: [")" +
         allowed_client + R"("], to: ["127.0.0.0/8"]}
  - {name: direct, action: allow, from: [127.0.0.2/32, 127.0.0.1/32], to: ["127.0.0.0/8"]}
limits: {handshake_timeout: 500ms, connect_timeout: 2s, idle_timeout: 10s, shutdown_grace: 1s)" +
         limits + R"(}
log: {level: error, access: off}
)";
}

template <class Client>
std::uint8_t socks5_reply_code(Client& c, const tcp::endpoint& target) {
  return socks5_exchange(c, socks5_connect_request(target))[1];
}

TEST(ProxyProtocol, HeaderClientDrivesTheRules) {
  backend echo(backend_mode::echo);
  gateway gw(config_for("203.0.113.7/32"));
  {
    bound_client c(gw.endpoint(), "127.0.0.1");
    c.send(v2_from("203.0.113.7"));
    ASSERT_EQ(socks5_reply_code(c, echo.endpoint()), 0x00);
    c.send(to_bytes("ping"));
    EXPECT_EQ(to_text(c.read_exact(4)), "ping");
  }
  {
    // Same balancer, another client behind it: no rule allows 203.0.113.8.
    bound_client c(gw.endpoint(), "127.0.0.1");
    c.send(v2_from("203.0.113.8"));
    EXPECT_EQ(socks5_reply_code(c, echo.endpoint()), 0x02);
  }
}

TEST(ProxyProtocol, V1HeaderSplitAcrossWritesAndTheClientBytesBehindIt) {
  backend echo(backend_mode::echo);
  gateway gw(config_for("203.0.113.7/32"));
  bound_client c(gw.endpoint(), "127.0.0.1");
  c.send(to_bytes("PROXY TCP4 203.0.113.7 "));
  std::this_thread::sleep_for(50ms);
  // The rest of the header and the SOCKS greeting in one segment: the door gets the greeting.
  bytes rest = to_bytes("198.51.100.1 5000 1080\r\n");
  const bytes greeting = socks5_greeting_noauth();
  rest.insert(rest.end(), greeting.begin(), greeting.end());
  c.send(rest);
  EXPECT_EQ(c.read_exact(2), (bytes{0x05, 0x00}));
  c.send(socks5_connect_request(echo.endpoint()));
  const bytes head = c.read_exact(10);
  EXPECT_EQ(head[1], 0x00);
}

TEST(ProxyProtocol, BalancerWithoutAHeaderIsClosed) {
  backend echo(backend_mode::echo);
  gateway gw(config_for("203.0.113.7/32"));
  bound_client c(gw.endpoint(), "127.0.0.1");
  c.send(socks5_greeting_noauth());
  EXPECT_TRUE(c.closed_silently());
}

TEST(ProxyProtocol, BalancerThatSaysNothingIsClosedAtTheHandshakeTimeout) {
  gateway gw(config_for("203.0.113.7/32"));
  bound_client c(gw.endpoint(), "127.0.0.1");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_silently());
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 400ms);
  EXPECT_LT(waited, 3s);
}

TEST(ProxyProtocol, HeaderAndDoorShareOneHandshakeTimeout) {
  // A client that trickles the header, then stalls in the SOCKS greeting, must not get a second
  // handshake_timeout (500 ms) for the door: the budget counts from the accept.
  gateway gw(config_for("203.0.113.7/32"));
  bound_client c(gw.endpoint(), "127.0.0.1");
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(350ms);
  c.send(v2_from("203.0.113.7"));
  c.send(bytes{0x05});  // the greeting's first byte, and nothing more
  EXPECT_TRUE(c.closed_silently());
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 450ms);
  EXPECT_LT(waited, 750ms) << "the door started its own handshake_timeout after the header";
}

TEST(ProxyProtocol, CorruptedHeaderIsClosed) {
  gateway gw(config_for("203.0.113.7/32"));
  bytes h = v2_from("203.0.113.7");
  h[17] ^= 0x01;  // breaks the CRC32C
  bound_client c(gw.endpoint(), "127.0.0.1");
  c.send(h);
  EXPECT_TRUE(c.closed_silently());
}

TEST(ProxyProtocol, UntrustedSourceSendingAHeaderIsClosedAndWithoutOneIsServed) {
  backend echo(backend_mode::echo);
  gateway gw(config_for("203.0.113.7/32"));
  {
    bound_client c(gw.endpoint(), "127.0.0.2");
    c.send(v2_from("203.0.113.7"));
    EXPECT_TRUE(c.closed_silently());
  }
  {
    bound_client c(gw.endpoint(), "127.0.0.2");
    c.send(to_bytes("PROXY TCP4 203.0.113.7 198.51.100.1 5000 1080\r\n"));
    EXPECT_TRUE(c.closed_silently());
  }
  {
    bound_client c(gw.endpoint(), "127.0.0.2");
    EXPECT_EQ(socks5_reply_code(c, echo.endpoint()), 0x00);
  }
}

TEST(ProxyProtocol, LocalCommandKeepsTheRealPeer) {
  backend echo(backend_mode::echo);
  gateway gw(config_for("203.0.113.7/32"));
  bound_client c(gw.endpoint(), "127.0.0.1");
  c.send(tunnel::encode_proxy_v2(proxy_header{}));  // LOCAL: rule `direct` allows 127.0.0.1 itself
  EXPECT_EQ(socks5_reply_code(c, echo.endpoint()), 0x00);
}

TEST(ProxyProtocol, PerSourceCountsTheHeaderClientNotTheBalancer) {
  backend echo(backend_mode::echo);
  gateway gw(config_for("203.0.113.0/24", ", per_source: 1"));
  bound_client a(gw.endpoint(), "127.0.0.1");
  a.send(v2_from("203.0.113.7"));
  ASSERT_EQ(socks5_reply_code(a, echo.endpoint()), 0x00);
  // Another client behind the same balancer is not counted against 203.0.113.7...
  bound_client b(gw.endpoint(), "127.0.0.1");
  b.send(v2_from("203.0.113.8"));
  EXPECT_EQ(socks5_reply_code(b, echo.endpoint()), 0x00);
  // ...while a second session of 203.0.113.7 is over its limit.
  bound_client again(gw.endpoint(), "127.0.0.1");
  again.send(v2_from("203.0.113.7", 40001));
  again.send(socks5_greeting_noauth());
  EXPECT_TRUE(again.closed_silently());
}

/// A backend that reads a PROXY header with the codec, then echoes; records each header.
class proxy_reading_backend {
 public:
  proxy_reading_backend() : server_([this](tcp::socket s) { return serve(std::move(s)); }) {}
  std::uint16_t port() const { return server_.port(); }
  std::optional<proxy_header> wait_header() {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mu_);
        if (header_) return header_;
      }
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

 private:
  net::awaitable<void> serve(tcp::socket s) {
    tunnel::proxy_header_parser parser;
    std::array<std::uint8_t, 1024> buf;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_ec);
      if (ec) co_return;
      std::span<const std::uint8_t> got(buf.data(), n);
      const auto r = parser.feed(got);
      if (r.state == tunnel::proxy_header_parser::status::failed) co_return;
      if (r.state == tunnel::proxy_header_parser::status::done) {
        {
          std::lock_guard lock(mu_);
          header_ = parser.header();
        }
        const auto rest = got.subspan(r.consumed);
        if (!rest.empty()) co_await net::async_write(s, net::buffer(rest.data(), rest.size()), use_ec);
        break;
      }
    }
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_ec);
      if (ec) co_return;
      auto [wec, w] = co_await net::async_write(s, net::buffer(buf.data(), n), use_ec);
      if (wec) co_return;
    }
  }

  std::mutex mu_;
  std::optional<proxy_header> header_;
  loopback_server server_;  // last: stops before the state above goes
};

TEST(SendProxy, ForwardBackendReadsTheClientNamedByTheBalancer) {
  proxy_reading_backend pp;
  gateway gw(R"(
listeners:
  - name: test
    bind: "127.0.0.1:0"
    forward: pp
    proxy_protocol: {from: [127.0.0.1/32]}
backends:
  - {name: pp, host: 127.0.0.1, portbase: )" +
             std::to_string(pp.port() - 1) + R"(, send_proxy: v2}
rules:
  - {name: office, action: allow, from: [203.0.113.7/32], to: ["backend:pp"]}
limits: {handshake_timeout: 500ms, connect_timeout: 2s, idle_timeout: 10s, shutdown_grace: 1s}
log: {level: error, access: off}
)");
  bound_client c(gw.endpoint(), "127.0.0.1");
  c.send(v2_from("203.0.113.7", 41234));
  c.send(to_bytes("hello"));
  EXPECT_EQ(to_text(c.read_exact(5)), "hello");
  const auto h = pp.wait_header();
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->proxied);
  EXPECT_EQ(h->source, v4("203.0.113.7", 41234));
  EXPECT_EQ(h->destination, v4("198.51.100.1", 1080));
  EXPECT_EQ(h->authority, "edge.example.test");
}

TEST(SendProxy, DirectClientIsNamedWithTheListeningAddress) {
  proxy_reading_backend pp;
  gateway gw(R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
backends:
  - {name: pp, host: 127.0.0.1, portbase: )" +
             std::to_string(pp.port() - 1) + R"(, send_proxy: v2}
rules:
  - {name: local, action: allow, from: [127.0.0.0/8], to: ["backend:pp"]}
log: {level: error, access: off}
)");
  bound_client c(gw.endpoint(), "127.0.0.3");
  ASSERT_EQ(socks5_reply_code(c, tcp::endpoint(net::ip::make_address("127.0.0.1"), pp.port())), 0x00);
  c.send(to_bytes("abc"));
  EXPECT_EQ(to_text(c.read_exact(3)), "abc");
  const auto h = pp.wait_header();
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->source.bytes[3], 3);  // 127.0.0.3
  EXPECT_EQ(h->destination, v4("127.0.0.1", gw.endpoint().port()));
}

}  // namespace
}  // namespace edgerelay::testing
