// SOCKS5 UDP ASSOCIATE (RFC 1928 section 7) through a real gateway on loopback: the reply, datagram
// integrity both ways with exact headers, denied targets, strangers, FRAG != 0, the end of the
// association with its TCP connection, and a reload's recheck of the names it relayed to.
#include <gtest/gtest.h>

#include <poll.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/ip/v6_only.hpp>

#include "tests/integration/harness.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

std::string udp_config(const std::string& first_rules = "", const std::string& idle = "10s") {
  return socks_loopback_config(
      first_rules, R"(["127.0.0.0/8", "[::1]", "localhost"])",
      "handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: " + idle + ", shutdown_grace: 2s");
}

/// A blocking UDP socket whose receives wait at most a bounded time (poll, never a bare recv).
class udp_peer {
 public:
  explicit udp_peer(const std::string& address = "127.0.0.1", bool dual_stack = false) : socket_(ioc_) {
    const udp::endpoint at(net::ip::make_address(address), 0);
    socket_.open(at.protocol());
    if (dual_stack) {
      socket_.set_option(net::ip::v6_only(false));
    }
    socket_.bind(at);
  }
  udp::endpoint endpoint() const { return socket_.local_endpoint(); }
  std::uint16_t port() const { return endpoint().port(); }
  void send_to(const bytes& b, const udp::endpoint& to) { socket_.send_to(net::buffer(b), to); }

  /// One datagram, or nullopt when none arrives within `wait`.
  std::optional<bytes> receive(std::chrono::milliseconds wait, udp::endpoint* from = nullptr) {
    pollfd p{socket_.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) != 1 || (p.revents & POLLIN) == 0) {
      return std::nullopt;
    }
    bytes buf(70000);
    udp::endpoint sender;
    const std::size_t n = socket_.receive_from(net::buffer(buf), sender);
    buf.resize(n);
    if (from != nullptr) *from = sender;
    return buf;
  }

 private:
  net::io_context ioc_;
  udp::socket socket_;
};

/// A UDP echo server on its own thread; counts what it receives and remembers the senders.
class udp_echo {
 public:
  explicit udp_echo(const std::string& address = "127.0.0.1", bool dual_stack = false)
      : peer_(address, dual_stack), thread_([this] { run(); }) {}
  ~udp_echo() {
    stop_ = true;
    thread_.join();
  }
  udp::endpoint endpoint() const { return peer_.endpoint(); }
  std::uint16_t port() const { return peer_.port(); }
  std::size_t received() const {
    std::lock_guard lock(mu_);
    return senders_.size();
  }
  std::vector<udp::endpoint> senders() const {
    std::lock_guard lock(mu_);
    return senders_;
  }
  /// True if the count grows beyond `n` within `wait`.
  bool receives_more_than(std::size_t n, std::chrono::milliseconds wait) const {
    const auto until = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < until) {
      if (received() > n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return received() > n;
  }

 private:
  void run() {
    while (!stop_) {
      udp::endpoint from;
      std::optional<bytes> got = peer_.receive(50ms, &from);
      if (!got) continue;
      {
        std::lock_guard lock(mu_);
        senders_.push_back(from);
      }
      peer_.send_to(*got, from);
    }
  }
  udp_peer peer_;
  mutable std::mutex mu_;
  std::vector<udp::endpoint> senders_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

bytes port_bytes(std::uint16_t port) {
  return {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port)};
}

/// 00 00 FRAG 01 a b c d PORT
bytes header_v4(const udp::endpoint& to, std::uint8_t frag = 0) {
  const auto a = to.address().to_v4().to_bytes();
  bytes h{0x00, 0x00, frag, 0x01, a[0], a[1], a[2], a[3]};
  const bytes p = port_bytes(to.port());
  h.insert(h.end(), p.begin(), p.end());
  return h;
}

/// 00 00 00 03 LEN NAME PORT
/// (Sized up front: GCC 12 sees a false out-of-bounds copy in an insert into the 5-byte start.)
bytes header_domain(const std::string& host, std::uint16_t port) {
  bytes h(5 + host.size() + 2);
  h[3] = 0x03;
  h[4] = static_cast<std::uint8_t>(host.size());
  std::copy(host.begin(), host.end(), h.begin() + 5);
  const bytes p = port_bytes(port);
  std::copy(p.begin(), p.end(), h.end() - 2);
  return h;
}

bytes concat_bytes(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Greeting and UDP ASSOCIATE naming `from` (IPv4); checks the reply's exact shape and returns the
/// relay address from BND.ADDR/BND.PORT.
udp::endpoint associate(client& c, const udp::endpoint& from) {
  c.send(socks5_greeting_noauth());
  EXPECT_EQ(c.read_exact(2), (bytes{0x05, 0x00}));
  const auto a = from.address().to_v4().to_bytes();
  const bytes p = port_bytes(from.port());
  c.send(bytes{0x05, 0x03, 0x00, 0x01, a[0], a[1], a[2], a[3], p[0], p[1]});
  const bytes reply = c.read_exact(10);
  // VER REP RSV ATYP: success, IPv4; BND.ADDR: the address the client reached the gateway on.
  EXPECT_EQ((bytes(reply.begin(), reply.begin() + 8)), (bytes{0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1}));
  const std::uint16_t port = static_cast<std::uint16_t>(reply[8] << 8 | reply[9]);
  EXPECT_NE(port, 0);
  return udp::endpoint(net::ip::make_address_v4("127.0.0.1"), port);
}

const udp::endpoint zeros(net::ip::address_v4::any(), 0);

/// Sends `payload` to `to` through the relay and checks the reply: the header naming `to`, then the payload.
void round_trip(udp_peer& me, const udp::endpoint& relay, const udp::endpoint& to, const bytes& payload) {
  me.send_to(concat_bytes(header_v4(to), payload), relay);
  udp::endpoint from;
  const std::optional<bytes> got = me.receive(3s, &from);
  ASSERT_TRUE(got.has_value()) << "no reply for " << payload.size() << " bytes";
  EXPECT_EQ(from, relay);
  EXPECT_EQ(*got, concat_bytes(header_v4(to), payload)) << payload.size() << " bytes";
}

std::int64_t wait_active(gateway& gw, std::int64_t want, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (gw.server().active_sessions() != want && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  return gw.server().active_sessions();
}

TEST(Socks5UdpAssociate, DatagramsOfManySizesKeepTheirBytesAndNameTheirSource) {
  udp_echo echo;
  gateway gw(udp_config());
  udp_peer me;
  client c(gw.endpoint());
  const udp::endpoint relay = associate(c, me.endpoint());
  const std::size_t sizes[] = {1,    2,    3,    10,   64,   100,  255,  256,  512,  1000,
                               1400, 1472, 1500, 2048, 3000, 4096, 5000, 7000, 8000, 8192};
  std::uint32_t seed = 1;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t n : sizes) {
      round_trip(me, relay, echo.endpoint(), pattern(n, seed++));
    }
  }
  EXPECT_EQ(echo.received(), 3 * std::size(sizes));
  // Every datagram reached the echo server from the gateway's one back socket.
  const auto senders = echo.senders();
  ASSERT_FALSE(senders.empty());
  for (const auto& s : senders) EXPECT_EQ(s, senders.front());
  // An empty payload is a datagram too.
  round_trip(me, relay, echo.endpoint(), bytes{});
  // The largest IPv4 datagram (65,507 bytes with its 10-byte header) fits the borrowed buffer both ways.
  round_trip(me, relay, echo.endpoint(), pattern(65507 - 10, 99));
}

TEST(Socks5UdpAssociate, DomainTarget) {
  udp_echo echo("::", true);  // "localhost" may resolve to ::1 or 127.0.0.1: answer on both
  gateway gw(udp_config());
  udp_peer me;
  client c(gw.endpoint());
  const udp::endpoint relay = associate(c, me.endpoint());
  for (std::size_t n : {1u, 77u, 1500u, 8192u}) {
    const bytes payload = pattern(n, static_cast<std::uint32_t>(n));
    me.send_to(concat_bytes(header_domain("localhost", echo.port()), payload), relay);
    const std::optional<bytes> got = me.receive(3s);
    ASSERT_TRUE(got.has_value());
    // The reply names the address the datagram came from: 127.0.0.1 or ::1, and the echo port.
    const bytes v4 = concat_bytes(header_v4(udp::endpoint(net::ip::make_address("127.0.0.1"), echo.port())), payload);
    bytes v6{0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const bytes p = port_bytes(echo.port());
    v6.insert(v6.end(), p.begin(), p.end());
    v6 = concat_bytes(v6, payload);
    EXPECT_TRUE(*got == v4 || *got == v6) << "reply of " << got->size() << " bytes";
  }
}

TEST(Socks5UdpAssociate, DeniedTargetGetsNothing) {
  udp_echo echo;
  udp_echo forbidden("127.0.0.2");
  gateway gw(udp_config(R"(
  - name: no-dot-two
    action: deny
    to: ["127.0.0.2"]
)"));
  udp_peer me;
  client c(gw.endpoint());
  const udp::endpoint relay = associate(c, me.endpoint());
  me.send_to(concat_bytes(header_v4(forbidden.endpoint()), to_bytes("secret")), relay);
  EXPECT_FALSE(me.receive(300ms).has_value());
  // The association goes on: an allowed target still answers, and the denied one saw nothing.
  round_trip(me, relay, echo.endpoint(), to_bytes("allowed"));
  me.send_to(concat_bytes(header_v4(forbidden.endpoint()), to_bytes("again")), relay);
  EXPECT_FALSE(me.receive(300ms).has_value());
  EXPECT_EQ(forbidden.received(), 0u);
  EXPECT_EQ(echo.received(), 1u);
}

TEST(Socks5UdpAssociate, DatagramsFromStrangersAreDropped) {
  udp_echo echo;
  gateway gw(udp_config());
  udp_peer me;
  client c(gw.endpoint());
  const udp::endpoint relay = associate(c, zeros);  // "I don't know yet": the first datagram decides
  round_trip(me, relay, echo.endpoint(), to_bytes("first"));
  ASSERT_EQ(echo.received(), 1u);

  // Same address, another port; then another loopback address.
  udp_peer other_port;
  other_port.send_to(concat_bytes(header_v4(echo.endpoint()), to_bytes("stranger")), relay);
  udp_peer other_address("127.0.0.3");
  other_address.send_to(concat_bytes(header_v4(echo.endpoint()), to_bytes("stranger")), relay);
  EXPECT_FALSE(echo.receives_more_than(1, 300ms));
  EXPECT_FALSE(other_port.receive(100ms).has_value());
  EXPECT_FALSE(other_address.receive(100ms).has_value());

  // A stranger writing to the gateway's target-side socket does not reach the client.
  const udp::endpoint back = echo.senders().front();
  other_port.send_to(to_bytes("spoof"), udp::endpoint(net::ip::make_address("127.0.0.1"), back.port()));
  EXPECT_FALSE(me.receive(300ms).has_value());

  round_trip(me, relay, echo.endpoint(), to_bytes("still mine"));
  EXPECT_EQ(echo.received(), 2u);
}

TEST(Socks5UdpAssociate, OnlyThePortTheClientNamedMaySend) {
  udp_echo echo;
  gateway gw(udp_config());
  udp_peer me;
  udp_peer first_to_speak;  // same address, not the port the request named
  client c(gw.endpoint());
  const udp::endpoint relay = associate(c, me.endpoint());
  first_to_speak.send_to(concat_bytes(header_v4(echo.endpoint()), to_bytes("early")), relay);
  EXPECT_FALSE(echo.receives_more_than(0, 300ms));
  round_trip(me, relay, echo.endpoint(), to_bytes("named"));
  EXPECT_EQ(echo.received(), 1u);
}

TEST(Socks5UdpAssociate, FragmentsAndMalformedDatagramsAreDropped) {
  udp_echo echo;
  gateway gw(udp_config());
  udp_peer me;
  client c(gw.endpoint());
  const udp::endpoint relay = associate(c, me.endpoint());
  me.send_to(concat_bytes(header_v4(echo.endpoint(), 0x01), to_bytes("frag 1")), relay);
  me.send_to(concat_bytes(header_v4(echo.endpoint(), 0x81), to_bytes("last frag")), relay);
  me.send_to(bytes{0x00, 0x00, 0x00}, relay);                                  // shorter than a header
  me.send_to(bytes{0x00, 0x00, 0x00, 0x01, 127, 0, 0}, relay);                 // address cut short
  me.send_to(bytes{0x00, 0x00, 0x00, 0x09, 127, 0, 0, 1, 0, 80, 'x'}, relay);  // unknown ATYP
  me.send_to(bytes{0x00, 0x00, 0x00, 0x03, 0x00, 0, 80, 'x'}, relay);          // empty domain
  EXPECT_FALSE(echo.receives_more_than(0, 300ms));
  EXPECT_FALSE(me.receive(100ms).has_value());
  round_trip(me, relay, echo.endpoint(), to_bytes("whole"));
  EXPECT_EQ(echo.received(), 1u);
}

TEST(Socks5UdpAssociate, EndsWithItsTcpConnection) {
  udp_echo echo;
  gateway gw(udp_config());
  const std::int64_t before = gw.server().active_sessions();
  udp_peer me;
  udp::endpoint relay;
  {
    client c(gw.endpoint());
    relay = associate(c, me.endpoint());
    round_trip(me, relay, echo.endpoint(), to_bytes("alive"));
    EXPECT_EQ(gw.server().active_sessions(), before + 1);
    // Bytes on the control connection after the request are ignored; the association goes on.
    c.send(std::string("ignored"));
    round_trip(me, relay, echo.endpoint(), to_bytes("still alive"));
    c.socket().close();
  }
  EXPECT_EQ(wait_active(gw, before, 3s), before);
  me.send_to(concat_bytes(header_v4(echo.endpoint()), to_bytes("too late")), relay);
  EXPECT_FALSE(echo.receives_more_than(2, 300ms));
  EXPECT_FALSE(me.receive(100ms).has_value());
}

TEST(Socks5UdpAssociate, IdleAssociationIsClosed) {
  udp_echo echo;
  gateway gw(udp_config("", "300ms"));
  udp_peer me;
  client c(gw.endpoint());
  const udp::endpoint relay = associate(c, me.endpoint());
  round_trip(me, relay, echo.endpoint(), to_bytes("once"));
  EXPECT_TRUE(c.closed_within(3s));
  EXPECT_EQ(wait_active(gw, 0, 3s), 0);
}

TEST(Socks5UdpAssociate, ManyAssociationsAtOnceStayApart) {
  udp_echo echo;
  gateway gw(udp_config());
  constexpr int count = 8;
  std::vector<std::unique_ptr<udp_peer>> peers;
  std::vector<std::unique_ptr<client>> controls;
  std::vector<udp::endpoint> relays;
  for (int i = 0; i < count; ++i) {
    peers.push_back(std::make_unique<udp_peer>());
    controls.push_back(std::make_unique<client>(gw.endpoint()));
    relays.push_back(associate(*controls.back(), peers.back()->endpoint()));
  }
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < count; ++i) {
      round_trip(*peers[i], relays[i], echo.endpoint(),
                 pattern(100 + 37 * i + round, static_cast<std::uint32_t>(i * 10 + round)));
    }
  }
  EXPECT_EQ(echo.received(), static_cast<std::size_t>(4 * count));
}

TEST(Socks5UdpAssociate, RecheckDecidesTheNameADestinationWasReachedByAgain) {
  udp_echo echo("::", true);  // "localhost" may resolve to ::1 or 127.0.0.1: answer on both
  const std::string recheck = "reload: {recheck_sessions: true}\n";
  config_file file(udp_config() + recheck);
  auto gw = gateway::from_file(file.path());
  const bytes to_localhost = header_domain("localhost", echo.port());

  udp_peer by_name_udp;
  client by_name(gw->endpoint());
  const udp::endpoint by_name_relay = associate(by_name, by_name_udp.endpoint());
  by_name_udp.send_to(concat_bytes(to_localhost, to_bytes("by name")), by_name_relay);
  ASSERT_TRUE(by_name_udp.receive(3s).has_value());

  udp_peer by_address_udp;
  client by_address(gw->endpoint(), 500ms);  // closed_within() waits at most this beyond its limit
  const udp::endpoint by_address_relay = associate(by_address, by_address_udp.endpoint());
  const udp::endpoint echo_v4(net::ip::make_address("127.0.0.1"), echo.port());
  round_trip(by_address_udp, by_address_relay, echo_v4, to_bytes("by address"));

  // The new rules deny the name, not the address: the association that named it is closed, the one
  // that sent to the address goes on.
  file.write(udp_config("  - {name: no-localhost, action: deny, to: [\"localhost\"]}\n") + recheck);
  gw->server().reload();
  EXPECT_TRUE(by_name.closed_within(3s));
  EXPECT_FALSE(by_address.closed_within(300ms));
  round_trip(by_address_udp, by_address_relay, echo_v4, to_bytes("still allowed"));
  // It follows the new rules: the name is denied now.
  const std::size_t seen = echo.received();
  by_address_udp.send_to(concat_bytes(to_localhost, to_bytes("denied")), by_address_relay);
  EXPECT_FALSE(by_address_udp.receive(300ms).has_value());
  EXPECT_EQ(echo.received(), seen);
}

}  // namespace
}  // namespace edgerelay::testing
