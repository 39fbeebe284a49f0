// SOCKS5 BIND through a real gateway on loopback, byte by byte: both replies, the expected peer
// only, the rules on the peer, the deadline, the listener's permission, recheck on reload.
//
// The expected peer (an FTP server, in real use) lives on 127.0.0.2; the gateway reaches it, and
// so listens, from 127.0.0.1. Strangers connect from 127.0.0.3.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <thread>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "tests/integration/harness.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

std::string bind_config(bool socks5_bind, const std::string& to = R"(["127.0.0.2"])",
                        const std::string& extra_limits = "", bool recheck = false) {
  return std::string(R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4], socks5_bind: )") +
         (socks5_bind ? "true" : "false") + R"(}
rules:
  - {name: ftp-server, action: allow, from: ["127.0.0.0/8"], to: )" +
         to + R"(}
limits: {)" +
         extra_limits + R"(handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 1s}
reload: {recheck_sessions: )" +
         (recheck ? "true" : "false") + R"(}
log: {level: error, access: off}
)";
}

/// 05 02 00 01 a.b.c.d port: a BIND for an IPv4 peer.
bytes bind_request(const std::string& peer, std::uint16_t port = 0) {
  const auto a = net::ip::make_address_v4(peer).to_bytes();
  return {0x05,
          0x02,
          0x00,
          0x01,
          a[0],
          a[1],
          a[2],
          a[3],
          static_cast<std::uint8_t>(port >> 8),
          static_cast<std::uint8_t>(port & 0xFF)};
}

std::uint16_t port_of(const bytes& reply) {
  return static_cast<std::uint16_t>(reply[8] << 8 | reply[9]);
}

/// Greets, sends the BIND and reads the first reply (10 bytes: IPv4 on loopback).
bytes first_reply(client& c, const bytes& request) {
  c.send(socks5_greeting_noauth());
  EXPECT_EQ(c.read_exact(2), (bytes{0x05, 0x00}));
  c.send(request);
  return c.read_exact(10);
}

/// A blocking connection from `source` (port 0) to `to`, as an FTP server's data connection.
class peer_connection {
 public:
  peer_connection(const std::string& source, const tcp::endpoint& to) : socket_(ioc_) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(net::ip::make_address(source), 0));
    socket_.connect(to);
    const timeval tv{5, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  tcp::endpoint local() const { return socket_.local_endpoint(); }
  void send(const std::string& s) { net::write(socket_, net::buffer(s)); }
  std::string read_exact(std::size_t n) {
    std::string out(n, '\0');
    net::read(socket_, net::buffer(out));
    return out;
  }
  /// True when the gateway closed this connection (EOF or reset) within the receive timeout.
  bool closed_by_gateway() {
    char byte = 0;
    error_code ec;
    const std::size_t got = socket_.read_some(net::buffer(&byte, 1), ec);
    return got == 0 && (ec == net::error::eof || ec == net::error::connection_reset);
  }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
};

tcp::endpoint listening_of(const bytes& first) {
  return tcp::endpoint(net::ip::address_v4({first[4], first[5], first[6], first[7]}), port_of(first));
}

TEST(Socks5Bind, BothRepliesThenTheRelay) {
  gateway gw(bind_config(true));
  client c(gw.endpoint());
  const bytes first = first_reply(c, bind_request("127.0.0.2"));
  // 05 00 00 01, the address the gateway uses toward 127.0.0.2 (127.0.0.1), an ephemeral port.
  EXPECT_EQ((bytes(first.begin(), first.begin() + 8)), (bytes{0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1}));
  ASSERT_NE(port_of(first), 0);

  peer_connection server("127.0.0.2", listening_of(first));
  const bytes second = c.read_exact(10);
  const std::uint16_t from = server.local().port();
  EXPECT_EQ(second, (bytes{0x05, 0x00, 0x00, 0x01, 127, 0, 0, 2, static_cast<std::uint8_t>(from >> 8),
                           static_cast<std::uint8_t>(from & 0xFF)}));

  server.send("220 data\n");
  EXPECT_EQ(to_text(c.read_exact(9)), "220 data\n");
  const bytes upload = pattern(256 * 1024, 7);
  c.send(upload);
  const std::string got = server.read_exact(upload.size());
  EXPECT_EQ(bytes(got.begin(), got.end()), upload);
}

TEST(Socks5Bind, OnePeerPerBindThePortClosesAfterIt) {
  gateway gw(bind_config(true));
  client c(gw.endpoint());
  const bytes first = first_reply(c, bind_request("127.0.0.2"));
  peer_connection server("127.0.0.2", listening_of(first));
  EXPECT_EQ(c.read_exact(10)[1], 0x00);
  EXPECT_THROW(peer_connection("127.0.0.2", listening_of(first)), boost::system::system_error);
}

TEST(Socks5Bind, ThePortNamedInTheRequestDoesNotMatter) {
  // FTP servers connect from port 20 or from any port; only the address is the peer's identity.
  gateway gw(bind_config(true));
  client c(gw.endpoint());
  const bytes first = first_reply(c, bind_request("127.0.0.2", 20));
  EXPECT_EQ(first[1], 0x00);
  peer_connection server("127.0.0.2", listening_of(first));
  EXPECT_EQ(c.read_exact(10)[1], 0x00);
}

TEST(Socks5Bind, AWrongPeerIsClosedAndTheWaitGoesOn) {
  gateway gw(bind_config(true));
  client c(gw.endpoint());
  const bytes first = first_reply(c, bind_request("127.0.0.2"));
  ASSERT_EQ(first[1], 0x00);
  for (int i = 0; i < 3; ++i) {
    peer_connection stranger("127.0.0.3", listening_of(first));
    EXPECT_TRUE(stranger.closed_by_gateway()) << "a connection from another address must be closed";
  }
  peer_connection server("127.0.0.2", listening_of(first));
  const bytes second = c.read_exact(10);
  EXPECT_EQ((bytes(second.begin(), second.begin() + 8)), (bytes{0x05, 0x00, 0x00, 0x01, 127, 0, 0, 2}));
  server.send("ok");
  EXPECT_EQ(to_text(c.read_exact(2)), "ok");
}

TEST(Socks5Bind, APeerTheRulesDenyGetsNotAllowed) {
  gateway gw(bind_config(true));
  client c(gw.endpoint());
  const bytes first = first_reply(c, bind_request("127.0.0.9"));
  EXPECT_EQ(first, (bytes{0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(c.closed_within(2s));
}

TEST(Socks5Bind, TheUnspecifiedAddressIsNeverAPeer) {
  // Dante's "bind extension" asks for 0.0.0.0: anyone could connect, so no rule can allow it.
  gateway gw(bind_config(true, R"(["*"])"));
  client c(gw.endpoint());
  EXPECT_EQ(first_reply(c, bind_request("0.0.0.0")), (bytes{0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
}

TEST(Socks5Bind, ANameIsResolvedAndDecidedLikeADial) {
  // "localhost" resolves to 127.0.0.1 (and ::1); the rules allow only 127.0.0.1.
  gateway gw(bind_config(true, R"(["127.0.0.1"])"));
  client c(gw.endpoint());
  c.send(socks5_greeting_noauth());
  EXPECT_EQ(c.read_exact(2), (bytes{0x05, 0x00}));
  c.send(bytes{0x05, 0x02, 0x00, 0x03, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 0});
  const bytes first = c.read_exact(10);
  EXPECT_EQ((bytes(first.begin(), first.begin() + 8)), (bytes{0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1}));
  peer_connection wrong("127.0.0.2", listening_of(first));
  EXPECT_TRUE(wrong.closed_by_gateway());
  peer_connection server("127.0.0.1", listening_of(first));
  EXPECT_EQ(c.read_exact(10)[1], 0x00);
}

TEST(Socks5Bind, NoPeerBeforeTheDeadlineGetsTtlExpired) {
  gateway gw(bind_config(true, R"(["127.0.0.2"])", "bind_timeout: 300ms, "));
  client c(gw.endpoint());
  const bytes first = first_reply(c, bind_request("127.0.0.2"));
  ASSERT_EQ(first[1], 0x00);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(c.read_exact(10), (bytes{0x05, 0x06, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
  EXPECT_TRUE(c.closed_within(2s));
  EXPECT_THROW(peer_connection("127.0.0.2", listening_of(first)), boost::system::system_error);
}

TEST(Socks5Bind, AListenerWithoutSocks5BindRefusesIt) {
  gateway gw(bind_config(false));
  client c(gw.endpoint());
  EXPECT_EQ(first_reply(c, bind_request("127.0.0.2")), (bytes{0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(c.closed_within(2s));
}

TEST(Socks5Bind, Socks4BindStaysRefused) {
  gateway gw(bind_config(true));
  client c(gw.endpoint());
  c.send(bytes{0x04, 0x02, 0x00, 0x15, 127, 0, 0, 2, 0x00});
  EXPECT_EQ(c.read_exact(8), (bytes{0x00, 0x5B, 0, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(c.closed_within(2s));
}

TEST(Socks5Bind, AClientThatLeavesEndsTheWait) {
  gateway gw(bind_config(true));
  tcp::endpoint listening;
  {
    client c(gw.endpoint());
    const bytes first = first_reply(c, bind_request("127.0.0.2"));
    ASSERT_EQ(first[1], 0x00);
    listening = listening_of(first);
  }
  bool closed = false;
  for (int i = 0; i < 50 && !closed; ++i) {
    try {
      peer_connection late("127.0.0.2", listening);
      std::this_thread::sleep_for(20ms);
    } catch (const boost::system::system_error&) {
      closed = true;
    }
  }
  EXPECT_TRUE(closed) << "the BIND's port must close when its client goes";
  EXPECT_TRUE([&] {
    for (int i = 0; i < 100; ++i) {
      if (gw.server().active_sessions() == 0) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }());
}

TEST(Socks5Bind, RecheckOnReloadClosesAWaitingAndARelayingBind) {
  config_file file(bind_config(true, R"(["127.0.0.2"])", "", true));
  auto gw = gateway::from_file(file.path());
  client waiting(gw->endpoint());
  const bytes waiting_first = first_reply(waiting, bind_request("127.0.0.2"));
  ASSERT_EQ(waiting_first[1], 0x00);
  client relaying(gw->endpoint());
  const bytes first = first_reply(relaying, bind_request("127.0.0.2"));
  peer_connection server("127.0.0.2", listening_of(first));
  ASSERT_EQ(relaying.read_exact(10)[1], 0x00);
  server.send("x");
  ASSERT_EQ(to_text(relaying.read_exact(1)), "x");

  file.write(bind_config(true, R"(["127.0.0.5"])", "", true));
  gw->server().reload();
  EXPECT_TRUE(waiting.closed_within(3s)) << "a BIND still waiting for a now-denied peer must be closed";
  EXPECT_TRUE(relaying.closed_within(3s)) << "a BIND relaying to a now-denied peer must be closed";
}

}  // namespace
}  // namespace edgerelay::testing
