// Rules with `via`, byte by byte: scripted upstream proxies on loopback check exactly what the
// gateway sends them (SOCKS5 with RFC 1929, HTTP CONNECT with Basic, a chain of both, a name for
// an upstream that resolves) and answer; the client sees the target's bytes, the proxy's refusal
// as its own SOCKS5 reply, and bytes a proxy sent right behind its answer.
#include <gtest/gtest.h>

#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "tests/integration/harness.hpp"
#include "tunnel/basic_auth.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

/// Records every byte each connection sent it, in order; the script decides the answers.
struct recorder {
  std::mutex mu;
  std::vector<bytes> seen;  ///< per connection, what the proxy read
  void add(std::size_t i, const bytes& b) {
    std::lock_guard lock(mu);
    if (seen.size() <= i) seen.resize(i + 1);
    seen[i].insert(seen[i].end(), b.begin(), b.end());
  }
  bytes of(std::size_t i) {
    std::lock_guard lock(mu);
    return i < seen.size() ? seen[i] : bytes{};
  }
};

net::awaitable<bytes> read_n(tcp::socket& s, std::size_t n) {
  bytes b(n);
  auto [ec, got] = co_await net::async_read(s, net::buffer(b), use_ec);
  b.resize(got);
  co_return b;
}

net::awaitable<void> write_all(tcp::socket& s, const bytes& b) {
  co_await net::async_write(s, net::buffer(b), use_ec);
}

/// Relays `a` <-> `b` until either ends (the proxies' tunnel, after the handshake).
net::awaitable<void> pipe_both(tcp::socket a, tcp::socket b) {
  auto ex = co_await net::this_coro::executor;
  auto one_way = [](tcp::socket& from, tcp::socket& to) -> net::awaitable<void> {
    std::array<std::uint8_t, 16384> buf{};
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(net::buffer(buf), use_ec);
      if (ec) break;
      auto [wec, w] = co_await net::async_write(to, net::buffer(buf.data(), n), use_ec);
      if (wec) break;
    }
    error_code ignored;
    to.shutdown(tcp::socket::shutdown_send, ignored);
  };
  auto sa = std::make_shared<tcp::socket>(std::move(a));
  auto sb = std::make_shared<tcp::socket>(std::move(b));
  net::co_spawn(
      ex, [sa, sb, one_way]() -> net::awaitable<void> { co_await one_way(*sa, *sb); }, net::detached);
  co_await one_way(*sb, *sa);
}

/// A SOCKS5 proxy that wants user/password `user`/`pw`, reads a CONNECT for an IPv4 address or a
/// name, answers `rep`, and on success connects to `target` (whatever was asked) and relays.
struct socks5_proxy {
  recorder rec;
  std::uint8_t rep = 0x00;
  tcp::endpoint target;
  std::atomic<std::size_t> n{0};
  loopback_server server{[this](tcp::socket s) { return serve(std::move(s)); }};

  net::awaitable<void> serve(tcp::socket s) {
    const std::size_t i = n++;
    const bytes greeting = co_await read_n(s, 4);  // 05 02 00 02
    rec.add(i, greeting);
    const bytes method{0x05, 0x02};
    co_await write_all(s, method);
    bytes auth = co_await read_n(s, 2);
    bytes user = co_await read_n(s, auth.size() == 2 ? auth[1] : 0);
    bytes plen = co_await read_n(s, 1);
    bytes pw = co_await read_n(s, plen.empty() ? 0 : plen[0]);
    rec.add(i, auth);
    rec.add(i, user);
    rec.add(i, plen);
    rec.add(i, pw);
    const bytes auth_ok{0x01, 0x00};
    co_await write_all(s, auth_ok);
    bytes head = co_await read_n(s, 4);
    rec.add(i, head);
    if (head.size() < 4) co_return;
    bytes addr;
    if (head[3] == 0x01) {
      addr = co_await read_n(s, 6);
    } else {
      bytes len = co_await read_n(s, 1);
      rec.add(i, len);
      addr = co_await read_n(s, (len.empty() ? 0 : len[0]) + 2u);
    }
    rec.add(i, addr);
    const bytes answer{0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
    co_await write_all(s, answer);
    if (rep != 0) co_return;
    tcp::socket up(s.get_executor());
    auto [ec] = co_await up.async_connect(target, use_ec);
    if (ec) co_return;
    co_await pipe_both(std::move(s), std::move(up));
  }
};

/// An HTTP proxy that reads one CONNECT head, answers 200 with `early` right behind it in the
/// same write, then relays to `target`.
struct connect_proxy {
  recorder rec;
  std::string early;
  tcp::endpoint target;
  std::atomic<std::size_t> n{0};
  loopback_server server{[this](tcp::socket s) { return serve(std::move(s)); }};

  net::awaitable<void> serve(tcp::socket s) {
    const std::size_t i = n++;
    bytes head;
    while (head.size() < 4 || !std::equal(head.end() - 4, head.end(), "\r\n\r\n")) {
      bytes one = co_await read_n(s, 1);
      if (one.empty() || head.size() > 4096) co_return;
      head.push_back(one[0]);
    }
    rec.add(i, head);
    const bytes answer = to_bytes("HTTP/1.1 200 Connection established\r\n\r\n" + early);
    co_await write_all(s, answer);
    tcp::socket up(s.get_executor());
    auto [ec] = co_await up.async_connect(target, use_ec);
    if (ec) co_return;
    co_await pipe_both(std::move(s), std::move(up));
  }
};

std::string config_for(const std::string& upstreams, const std::string& rules) {
  return "listeners:\n  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5]}\nupstreams:\n" + upstreams +
         "rules:\n" + rules +
         "limits: {handshake_timeout: 2s, connect_timeout: 3s, idle_timeout: 30s, shutdown_grace: 1s}\n"
         "log: {level: error, access: off}\n";
}

bytes port_bytes(std::uint16_t p) {
  return {static_cast<std::uint8_t>(p >> 8), static_cast<std::uint8_t>(p & 0xFF)};
}

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

class ChainWire : public ::testing::Test {
 protected:
  void SetUp() override {
    pw_dir_ = std::make_unique<config_file>("");
    pw_path_ = pw_dir_->path() + ".pw";
    std::ofstream(pw_path_) << "s3cret\n";
  }
  std::unique_ptr<config_file> pw_dir_;
  std::string pw_path_;
};

TEST_F(ChainWire, Socks5HopSendsExactlyTheGreetingTheLoginAndTheDecidedAddress) {
  backend echo(backend_mode::echo);
  socks5_proxy proxy;
  proxy.target = echo.endpoint();
  gateway gw(config_for("  - {name: p, url: \"socks5://127.0.0.1:" + std::to_string(proxy.server.port()) +
                            "\", user: edge, password_file: " + pw_path_ + "}\n",
                        "  - {name: r, action: allow, to: [\"127.0.0.1\"], via: p}\n"));
  client c(gw.endpoint());
  const bytes reply = socks5_connect(c, echo.endpoint());
  ASSERT_EQ(reply[1], 0x00);
  c.send(std::string("hello"));
  EXPECT_EQ(to_text(c.read_exact(5)), "hello");
  const bytes want = cat({{0x05, 0x02, 0x00, 0x02},
                          {0x01, 0x04},
                          to_bytes("edge"),
                          {0x06},
                          to_bytes("s3cret"),
                          {0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1},
                          port_bytes(echo.port())});
  EXPECT_EQ(proxy.rec.of(0), want);
  EXPECT_TRUE(echo.peers().size() == 1u);
}

TEST_F(ChainWire, AProxysRefusalIsTheClientsReplyAndNothingIsDialledDirectly) {
  backend echo(backend_mode::echo);
  socks5_proxy proxy;
  proxy.rep = 0x05;  // connection refused
  proxy.target = echo.endpoint();
  gateway gw(config_for("  - {name: p, url: \"socks5://127.0.0.1:" + std::to_string(proxy.server.port()) +
                            "\", user: edge, password_file: " + pw_path_ + "}\n",
                        "  - {name: r, action: allow, to: [\"127.0.0.1\"], via: p}\n"));
  client c(gw.endpoint());
  const bytes reply = socks5_connect(c, echo.endpoint());
  EXPECT_EQ(reply[1], 0x05);
  EXPECT_TRUE(echo.peers().empty());
}

TEST_F(ChainWire, ChainOfConnectThenSocks5AsksEachHopForTheNextAndKeepsBytesBehindTheAnswer) {
  backend echo(backend_mode::echo);
  socks5_proxy inner;
  inner.target = echo.endpoint();
  connect_proxy outer;
  outer.early = "";
  outer.target = inner.server.endpoint();
  const std::string inner_port = std::to_string(inner.server.port());
  gateway gw(config_for("  - {name: corp, url: \"http://127.0.0.1:" + std::to_string(outer.server.port()) +
                            "\", user: bob, password_file: " + pw_path_ +
                            "}\n"
                            "  - {name: partner, url: \"socks5://127.0.0.1:" +
                            inner_port + "\", user: edge, password_file: " + pw_path_ +
                            ", resolve: upstream}\n"
                            "  - {name: both, chain: [corp, partner], resolve: upstream}\n",
                        "  - {name: r, action: allow, to: [\"db.partner.example\"], via: both}\n"));
  client c(gw.endpoint());
  const bytes reply = socks5_exchange(c, socks5_connect_domain("db.partner.example", echo.port()));
  ASSERT_EQ(reply[1], 0x00);
  c.send(std::string("through two"));
  EXPECT_EQ(to_text(c.read_exact(11)), "through two");
  const std::string authority = "127.0.0.1:" + inner_port;
  EXPECT_EQ(to_text(outer.rec.of(0)), "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority +
                                          "\r\nProxy-Authorization: " + tunnel::encode_basic_auth("bob", "s3cret") +
                                          "\r\n\r\n");
  // The name goes to the last hop as a SOCKS5 domain: the upstream resolves it.
  const std::string name = "db.partner.example";
  const bytes tail =
      cat({{0x05, 0x01, 0x00, 0x03, static_cast<std::uint8_t>(name.size())}, to_bytes(name), port_bytes(echo.port())});
  const bytes seen = inner.rec.of(0);
  ASSERT_GE(seen.size(), tail.size());
  EXPECT_EQ(bytes(seen.end() - static_cast<std::ptrdiff_t>(tail.size()), seen.end()), tail);
}

TEST_F(ChainWire, BytesAProxySendsRightBehindItsAnswerReachTheClient) {
  // A target that speaks first may have its greeting in the proxy's first segment.
  backend echo(backend_mode::echo);
  connect_proxy proxy;
  proxy.early = "EARLY";
  proxy.target = echo.endpoint();
  gateway gw(config_for("  - {name: corp, url: \"http://127.0.0.1:" + std::to_string(proxy.server.port()) + "\"}\n",
                        "  - {name: r, action: allow, to: [\"127.0.0.1\"], via: corp}\n"));
  client c(gw.endpoint());
  const bytes reply = socks5_connect(c, echo.endpoint());
  ASSERT_EQ(reply[1], 0x00);
  EXPECT_EQ(to_text(c.read_exact(5)), "EARLY");
  c.send(std::string("x"));
  EXPECT_EQ(to_text(c.read_exact(1)), "x");
}

TEST_F(ChainWire, ADeadFirstPoolMemberFailsOverToTheNext) {
  backend echo(backend_mode::echo);
  connect_proxy live;
  live.target = echo.endpoint();
  const std::uint16_t dead = closed_port();
  gateway gw(config_for("  - {name: dead, url: \"http://127.0.0.1:" + std::to_string(dead) +
                            "\"}\n"
                            "  - {name: live, url: \"http://127.0.0.1:" +
                            std::to_string(live.server.port()) +
                            "\"}\n"
                            "  - {name: any, pool: [dead, live], fail_after: 1, set_aside: 60s}\n",
                        "  - {name: r, action: allow, to: [\"127.0.0.1\"], via: any}\n"));
  for (int i = 0; i < 2; ++i) {
    client c(gw.endpoint());
    const bytes reply = socks5_connect(c, echo.endpoint());
    ASSERT_EQ(reply[1], 0x00) << "session " << i;
    c.send(std::string("ok"));
    EXPECT_EQ(to_text(c.read_exact(2)), "ok");
  }
  EXPECT_EQ(live.n.load(), 2u);
}

TEST_F(ChainWire, ReloadRecheckClosesAViaSessionTheNewRulesDeny) {
  backend echo(backend_mode::echo);
  connect_proxy proxy;
  proxy.target = echo.endpoint();
  const auto yaml = [&](const std::string& first) {
    return "listeners:\n  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5]}\nupstreams:\n"
           "  - {name: corp, url: \"http://127.0.0.1:" +
           std::to_string(proxy.server.port()) + "\"}\nrules:\n" + first +
           "  - {name: r, action: allow, to: [\"127.0.0.1\"], via: corp}\n"
           "limits: {handshake_timeout: 2s, connect_timeout: 3s, idle_timeout: 30s, shutdown_grace: 1s}\n"
           "reload: {recheck_sessions: true}\nlog: {level: error, access: off}\n";
  };
  config_file file(yaml(""));
  auto gw = gateway::from_file(file.path());
  client c(gw->endpoint());
  ASSERT_EQ(socks5_connect(c, echo.endpoint())[1], 0x00);
  c.send(std::string("a"));
  EXPECT_EQ(to_text(c.read_exact(1)), "a");
  // The decided address is what recheck decides again, as for a direct session.
  file.write(yaml("  - {name: closed, action: deny, to: [\"127.0.0.1:" + std::to_string(echo.port()) + "\"]}\n"));
  gw->server().reload();
  EXPECT_TRUE(c.closed_within(3s)) << "a session through an upstream that the new rules deny must be closed";
}

}  // namespace
}  // namespace edgerelay::testing
