// The client mode's route to its gateway over real loopback sockets: CONNECT with Basic through a
// scripted proxy, then TLS; a 407, a refused CONNECT, an unreachable proxy and a certificate from
// an unknown CA each name their hop, and the TLS failure names the certificate's issuer.
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "config/client.hpp"
#include "proxy/outbound/gateway/route.hpp"
#include "tests/support/test_certs.hpp"

namespace edgerelay::proxy::gateway {
namespace {

using namespace std::chrono_literals;

/// One connection, served on a thread: reads a request head, answers `response`; with `tls`, then
/// runs a TLS server handshake (the gateway behind the proxy) and echoes one line.
class scripted_proxy {
 public:
  scripted_proxy(std::string response, std::shared_ptr<net::ssl::context> tls)
      : acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, response = std::move(response), tls = std::move(tls)] {
      error_code ec;
      tcp::socket s = acceptor_.accept(ec);
      if (ec) return;
      net::streambuf buf;
      if (!response.empty() || !tls) {
        net::read_until(s, buf, "\r\n\r\n", ec);
        head_ = std::string(static_cast<const char*>(buf.data().data()), buf.size());
        net::write(s, net::buffer(response), ec);
        if (ec || !tls) return;
      }
      net::ssl::stream<tcp::socket&> tls_stream(s, *tls);
      tls_stream.handshake(net::ssl::stream_base::server, ec);
      if (ec) return;
      std::array<char, 64> line{};
      const std::size_t n = tls_stream.read_some(net::buffer(line), ec);
      if (!ec) net::write(tls_stream, net::buffer(line.data(), n), ec);
    });
  }
  ~scripted_proxy() {
    error_code ignored;
    acceptor_.close(ignored);
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return port_; }
  /// The request head the proxy got (read once the thread is done with it).
  std::string head() {
    if (thread_.joinable()) thread_.join();
    return head_;
  }

 private:
  net::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::string head_;
  std::thread thread_;
};

std::shared_ptr<net::ssl::context> gateway_server_context() {
  const auto& certs = test::get_test_certs();
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->use_certificate_chain_file(certs.server.cert);
  ctx->use_private_key_file(certs.server.key, net::ssl::context::pem);
  return ctx;
}

/// `io` is the caller's: a connected stream must not outlive the context its socket is on.
route_connection connect_once(net::io_context& io, const tcp_route& route) {
  route_connection out;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        out = co_await with_phase_deadline(co_await net::this_coro::executor,
                                           [&](phase_deadline& dl) -> net::awaitable<route_connection> {
                                             dl.start(5s);
                                             co_return co_await route.connect(dl);
                                           });
      },
      [](const std::exception_ptr& e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  return out;
}

route_settings through_proxy(std::uint16_t proxy_port, const std::string& ca) {
  route_settings s;
  s.kind = route_kind::connect;
  s.gateway_host = "gw.test";
  s.gateway_port = 443;
  s.proxy_host = "127.0.0.1";
  s.proxy_port = proxy_port;
  s.auth = std::make_shared<basic_authenticator>("bob", "pw");
  if (!ca.empty()) {
    std::string why;
    s.tls = make_gateway_tls_context(config::gateway_tls_config{ca, "gw.test", "", ""}, why);
    EXPECT_TRUE(s.tls) << why;
    s.server_name = "gw.test";
  }
  return s;
}

TEST(GatewayRoute, ConnectWithBasicThenVerifiedTls) {
  ASSERT_EQ(test::get_test_certs().error, "");
  scripted_proxy proxy("HTTP/1.1 200 Connection established\r\n\r\n", gateway_server_context());
  const tcp_route route(through_proxy(proxy.port(), test::get_test_certs().ca));
  net::io_context io;
  route_connection c = connect_once(io, route);
  ASSERT_EQ(c.result, outcome::success) << c.failed_hop << ": " << c.detail;
  ASSERT_TRUE(c.stream);
  EXPECT_TRUE(c.stream->is_tls());
  EXPECT_EQ(c.style.authority, "gw.test:443");
  EXPECT_FALSE(c.style.absolute_form);
  c.stream->close();
  const std::string head = proxy.head();
  EXPECT_EQ(head.rfind("CONNECT gw.test:443 HTTP/1.1\r\n", 0), 0U) << head;
  EXPECT_NE(head.find("\r\nProxy-Authorization: Basic Ym9iOnB3\r\n"), std::string::npos) << head;
}

TEST(GatewayRoute, ProxyAuthRequiredNamesTheChallenge) {
  scripted_proxy proxy(
      "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n"
      "Content-Length: 0\r\n\r\n",
      nullptr);
  net::io_context io;
  const route_connection c = connect_once(io, tcp_route(through_proxy(proxy.port(), "")));
  EXPECT_NE(c.result, outcome::success);
  EXPECT_EQ(c.failed_hop, "proxy_auth");
  EXPECT_NE(c.detail.find("answered 407 Proxy Authentication Required (Proxy-Authenticate: Basic realm=\"corp\")"),
            std::string::npos)
      << c.detail;
  EXPECT_NE(c.detail.find("refused the Basic credentials"), std::string::npos) << c.detail;
  EXPECT_EQ(c.detail.find("pw"), std::string::npos) << "the password must not reach the detail";
}

TEST(GatewayRoute, RefusedConnectNamesTheStatus) {
  scripted_proxy proxy("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", nullptr);
  net::io_context io;
  const route_connection c = connect_once(io, tcp_route(through_proxy(proxy.port(), "")));
  EXPECT_EQ(c.failed_hop, "connect");
  EXPECT_NE(c.detail.find("refused CONNECT gw.test:443: 403 Forbidden (the proxy may allow CONNECT to port 443 only)"),
            std::string::npos)
      << c.detail;
}

TEST(GatewayRoute, UnreachableProxyIsTheProxyHop) {
  std::uint16_t closed = 0;
  {
    net::io_context io;
    tcp::acceptor a(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    closed = a.local_endpoint().port();
  }
  net::io_context io;
  const route_connection c = connect_once(io, tcp_route(through_proxy(closed, "")));
  EXPECT_EQ(c.result, outcome::connection_refused);
  EXPECT_EQ(c.failed_hop, "proxy");
  EXPECT_NE(c.detail.find("proxy 127.0.0.1:" + std::to_string(closed) + " unreachable"), std::string::npos) << c.detail;
}

TEST(GatewayRoute, UnknownIssuerIsNamedWithTheInspectionHint) {
  ASSERT_EQ(test::get_test_certs().error, "");
  scripted_proxy proxy("HTTP/1.1 200 OK\r\n\r\n", gateway_server_context());
  net::io_context io;
  const route_connection c = connect_once(io, tcp_route(through_proxy(proxy.port(), test::get_test_certs().other_ca)));
  EXPECT_EQ(c.result, outcome::backend_tls_failed);
  EXPECT_EQ(c.failed_hop, "tls_verify");
  EXPECT_NE(c.detail.find("certificate verify failed"), std::string::npos) << c.detail;
  EXPECT_NE(c.detail.find("issued by /CN=edgerelay-test-ca"), std::string::npos) << c.detail;
  EXPECT_NE(c.detail.find("a TLS-inspecting proxy may be in the way"), std::string::npos) << c.detail;
}

TEST(GatewayRoute, DirectPlainAndAbsoluteForm) {
  scripted_proxy gateway("", nullptr);  // accepts, reads a head, answers nothing
  route_settings s;
  s.kind = route_kind::absolute;
  s.gateway_host = "gw.test";
  s.gateway_port = 80;
  s.proxy_host = "127.0.0.1";
  s.proxy_port = gateway.port();
  s.auth = std::make_shared<basic_authenticator>("bob", "pw");
  const tcp_route route(s);
  net::io_context io;
  route_connection c = connect_once(io, route);
  ASSERT_EQ(c.result, outcome::success) << c.detail;
  EXPECT_TRUE(c.style.absolute_form);
  EXPECT_EQ(c.style.authority, "gw.test:80");
  EXPECT_EQ(c.style.proxy_authorization, "Basic Ym9iOnB3");
  EXPECT_FALSE(c.stream->is_tls());
  EXPECT_EQ(route.describe(), "plain-HTTP proxy 127.0.0.1:" + std::to_string(gateway.port()) +
                                  " forwarding to gw.test:80 (proxy auth Basic), plain");
  c.stream->close();
}

}  // namespace
}  // namespace edgerelay::proxy::gateway
