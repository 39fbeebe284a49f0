// Logins through a real listener: a source that keeps failing is throttled without a verification,
// other sources and the real user are not, and a flood of failing logins does not stall the tunnels
// of the same worker (the verifications run on the pool).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/write.hpp>

#include "config/password.hpp"
#include "tests/integration/harness.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string auth_config(const std::string& hash, const std::string& auth_failures) {
  return R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5], auth: password}
users:
  - {name: alice, password: ")" +
         hash + R"("}
rules:
  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}
limits: {handshake_timeout: 10s, idle_timeout: 30s, shutdown_grace: 1s, auth_failures: )" +
         auth_failures + R"(}
log: {level: error, access: off}
)";
}

/// A blocking SOCKS5 client connection from a chosen loopback source address (127.0.0.0/8 is all
/// on lo, so each address is another source to the gateway).
class sourced_client {
 public:
  sourced_client(const std::string& source, const tcp::endpoint& gateway) : socket_(ioc_) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(net::ip::make_address(source), 0));
    socket_.connect(gateway);
    timeval tv{};
    tv.tv_sec = 15;
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
  }

  void send(const bytes& b) { net::write(socket_, net::buffer(b)); }
  bytes read_exact(std::size_t n) {
    bytes out(n);
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::recv(socket_.native_handle(), out.data() + got, n - got, 0);
      if (r <= 0) throw std::runtime_error("read_exact: connection closed or timed out");
      got += static_cast<std::size_t>(r);
    }
    return out;
  }

  /// The RFC 1929 exchange: returns the status byte (0 success) and how long the answer took.
  std::pair<std::uint8_t, steady::duration> login(const std::string& user, const std::string& password) {
    send(bytes{0x05, 0x01, 0x02});
    if (read_exact(2) != bytes{0x05, 0x02}) throw std::runtime_error("user/password method not chosen");
    bytes req{0x01, static_cast<std::uint8_t>(user.size())};
    req.insert(req.end(), user.begin(), user.end());
    req.push_back(static_cast<std::uint8_t>(password.size()));
    req.insert(req.end(), password.begin(), password.end());
    const auto sent = steady::now();
    send(req);
    const bytes status = read_exact(2);
    return {status.at(1), steady::now() - sent};
  }

 private:
  int one_ = 1;
  net::io_context ioc_;
  tcp::socket socket_;
};

std::uint8_t login_status(const std::string& source, const tcp::endpoint& gw, const std::string& user,
                          const std::string& password) {
  sourced_client c(source, gw);
  return c.login(user, password).first;
}

long long ms(steady::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

TEST(AuthThrottle, SixthFailureFromOneSourceIsRefusedWithoutAVerification) {
  backend echo(backend_mode::echo);
  gateway gw(auth_config(config::hash_password("s3cret", 1000), "{max: 5, window: 60s, backoff: 30s}"), 1);
  const auto& pool = gw.server().verifier();
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(login_status("127.0.0.2", gw.endpoint(), "alice", "wrong"), 0x01) << "attempt " << i;
  }
  EXPECT_EQ(pool.verified(), 5U);

  // The sixth: the normal failure reply, held about a second, and no PBKDF2 run for it.
  sourced_client sixth("127.0.0.2", gw.endpoint());
  const auto [status, took] = sixth.login("alice", "wrong");
  EXPECT_EQ(status, 0x01);
  EXPECT_GE(took, 900ms) << "a throttled refusal must not be quicker than a verification";
  EXPECT_EQ(pool.verified(), 5U) << "a throttled source's attempt was verified";
  // Even the right password is refused from there during the back-off.
  EXPECT_EQ(login_status("127.0.0.2", gw.endpoint(), "alice", "s3cret"), 0x01);
  EXPECT_EQ(pool.verified(), 5U);

  // Another source logs in at once and its tunnel works.
  sourced_client other("127.0.0.3", gw.endpoint());
  const auto [ok, quick] = other.login("alice", "s3cret");
  EXPECT_EQ(ok, 0x00);
  EXPECT_LT(quick, 900ms) << "another source was slowed down: " << ms(quick) << " ms";
  other.send(socks5_connect_request(echo.endpoint()));
  EXPECT_EQ(other.read_exact(10)[1], 0x00);
  other.send(to_bytes("through"));
  EXPECT_EQ(to_text(other.read_exact(7)), "through");
  EXPECT_EQ(pool.verified(), 6U);
}

TEST(AuthThrottle, FailuresAgainstANameNeverLockItsUserOut) {
  backend echo(backend_mode::echo);
  gateway gw(
      auth_config(config::hash_password("s3cret", 1000), "{max: 5, window: 60s, backoff: 30s, user_delay: 300ms}"), 1);
  const auto& pool = gw.server().verifier();
  // Three attackers, each until it is throttled: 15 verified failures against alice.
  for (const std::string source : {"127.0.0.10", "127.0.0.11", "127.0.0.12"}) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(login_status(source, gw.endpoint(), "alice", "guess" + std::to_string(i)), 0x01);
    }
  }
  EXPECT_EQ(pool.verified(), 15U);

  // Alice from her own address: in at once (a success is never held), tunnel working.
  sourced_client alice("127.0.0.20", gw.endpoint());
  const auto [status, took] = alice.login("alice", "s3cret");
  ASSERT_EQ(status, 0x00) << "the real user was locked out";
  EXPECT_LT(took, 250ms) << "the real user's login was held " << ms(took) << " ms";
  alice.send(socks5_connect_request(echo.endpoint()));
  EXPECT_EQ(alice.read_exact(10)[1], 0x00);
  alice.send(to_bytes("mine"));
  EXPECT_EQ(to_text(alice.read_exact(4)), "mine");

  // A wrong password for her name from a fresh source is still verified, only answered late.
  sourced_client typo("127.0.0.21", gw.endpoint());
  const auto [typo_status, typo_took] = typo.login("alice", "s3cre");
  EXPECT_EQ(typo_status, 0x01);
  EXPECT_GE(typo_took, 280ms);
  EXPECT_EQ(pool.verified(), 17U);
}

TEST(AuthPool, FailingLoginsDoNotStallATunnelOnTheSameWorker) {
  backend echo(backend_mode::echo);
  // The costliest hash a config may hold, one worker, no throttling: every attempt is verified.
  const std::string slow_hash = config::hash_password("s3cret", config::max_pbkdf2_iterations);
  gateway gw(auth_config(slow_hash, "{max: 1000000, user_delay: 0ms}"), 1);
  const auto& pool = gw.server().verifier();

  sourced_client tunnel("127.0.0.1", gw.endpoint());
  ASSERT_EQ(tunnel.login("alice", "s3cret").first, 0x00);
  tunnel.send(socks5_connect_request(echo.endpoint()));
  ASSERT_EQ(tunnel.read_exact(10)[1], 0x00);

  // What one verification costs here and now (a failing login while nothing else runs).
  steady::duration verification{};
  {
    sourced_client probe("127.0.0.1", gw.endpoint());
    const auto [status, took] = probe.login("alice", "wrong");
    ASSERT_EQ(status, 0x01);
    verification = took;
  }

  // Eight clients keep failing logins in flight, each its own connection per attempt.
  std::atomic<bool> stop{false};
  std::atomic<int> failed_logins{0};
  std::vector<std::thread> flood;
  for (int i = 0; i < 8; ++i) {
    flood.emplace_back([&, i] {
      const std::string source = "127.0.1." + std::to_string(i + 1);
      for (int n = 0; n < 100 && !stop.load(); ++n) {
        try {
          if (login_status(source, gw.endpoint(), "alice", "wrong" + std::to_string(n)) == 0x01) {
            failed_logins.fetch_add(1);
          }
        } catch (const std::exception&) {
          // the gateway closing at the end of the test
        }
      }
    });
  }
  const auto verified_before = pool.verified();
  // Let the flood fill the queue, then time echoes for at least three verifications' time and until
  // at least two verifications finished meanwhile (on a loaded machine the low-priority pool may be
  // slow), within a hard limit.
  std::this_thread::sleep_for(verification / 4);
  std::vector<steady::duration> rtts;
  const auto until = steady::now() + 3 * verification;
  const auto hard_limit = steady::now() + 30s;
  const bytes ping = pattern(32, 7);
  while ((steady::now() < until || rtts.size() < 20 || pool.verified() - verified_before < 2) &&
         steady::now() < hard_limit && rtts.size() < 20000) {
    const auto sent = steady::now();
    tunnel.send(ping);
    ASSERT_EQ(tunnel.read_exact(ping.size()), ping);
    rtts.push_back(steady::now() - sent);
    std::this_thread::sleep_for(2ms);
  }
  const auto verified_during = pool.verified() - verified_before;
  stop = true;
  for (auto& t : flood) t.join();

  std::sort(rtts.begin(), rtts.end());
  const auto p90 = rtts[rtts.size() * 9 / 10];
  const auto worst = rtts.back();
  std::cout << "verification " << ms(verification) << " ms; " << rtts.size() << " echoes during the flood: p50 "
            << std::chrono::duration_cast<std::chrono::microseconds>(rtts[rtts.size() / 2]).count() << " us, p90 "
            << std::chrono::duration_cast<std::chrono::microseconds>(p90).count() << " us, max " << ms(worst) << " ms; "
            << verified_during << " verifications ran meanwhile, " << failed_logins.load() << " failed logins in all\n";
  ASSERT_GE(verified_during, 2U) << "the flood did not keep the pool busy during the measurement";
  // On the worker, each verification would hold every echo behind it for up to its whole length.
  EXPECT_LT(p90, verification / 10);
  EXPECT_LT(worst, verification / 2);
}

}  // namespace
}  // namespace edgerelay::testing
