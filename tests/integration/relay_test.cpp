// start_relay() on its own, over loopback TCP, with each staging kind: splice pipes and the copy
// buffers that take over when no pipe can be had. Bulk bytes in both directions at once, small
// request/response exchanges (every read short, so every wait is a re-armed readiness wait), and
// half-close in each order.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/relay.hpp"
#include "proxy/relay/relay_pools.hpp"
#include "tests/integration/loopback_leg.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 131 + seed) & 0xff);
  return v;
}

/// Writes everything, then shuts the sending side down.
void send_all_then_fin(tcp::socket& s, const std::vector<std::uint8_t>& data) {
  net::write(s, net::buffer(data));
  s.shutdown(tcp::socket::shutdown_send);
}

/// Reads until EOF.
std::vector<std::uint8_t> read_to_eof(tcp::socket& s) {
  std::vector<std::uint8_t> out;
  std::uint8_t buf[65536];
  for (;;) {
    error_code ec;
    const std::size_t n = s.read_some(net::buffer(buf), ec);
    out.insert(out.end(), buf, buf + n);
    if (ec) break;
  }
  return out;
}

class RelayStaging : public ::testing::TestWithParam<bool> {
 protected:
  /// Runs the relay between a client leg and an upstream leg while `drive` works the far ends on
  /// its own thread; returns the relay's result (bounded: the test fails instead of hanging).
  relay_result run(const std::function<void(tcp::socket& client, tcp::socket& upstream)>& drive) {
    net::io_context ioc;
    leg client(ioc);
    leg upstream(ioc);
    relay_pools pools;
    std::optional<relay_result> result;
    start_relay(client.near, upstream.near, pools, relay_options{.idle_timeout = 10s, .use_splice = GetParam()},
                [&](relay_result r) {
                  result = r;
                  // The relay leaves the last FIN to its caller.
                  error_code ignored;
                  client.near.close(ignored);
                  upstream.near.close(ignored);
                });
    auto driver = std::async(std::launch::async, [&] { drive(client.far, upstream.far); });
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!result && std::chrono::steady_clock::now() < deadline) {
      ioc.run_for(50ms);
    }
    EXPECT_TRUE(result.has_value()) << "the relay did not end within 30 s";
    if (!result) {
      // shutdown(2), unlike close, wakes the driver's blocked reads.
      error_code ignored;
      client.far.shutdown(tcp::socket::shutdown_both, ignored);
      upstream.far.shutdown(tcp::socket::shutdown_both, ignored);
    }
    driver.get();
    EXPECT_EQ(pools.pooled_pipes() > 0, GetParam()) << "pipes go back to the pool only on the splice path";
    return result.value_or(relay_result{});
  }
};

TEST_P(RelayStaging, BulkBothWaysAtOnceArrivesIntact) {
  const auto up = pattern(24 << 20, 7);
  const auto down = pattern(24 << 20, 91);
  std::vector<std::uint8_t> got_up, got_down;
  const relay_result r = run([&](tcp::socket& client, tcp::socket& upstream) {
    auto reader_up = std::async(std::launch::async, [&] { return read_to_eof(upstream); });
    auto reader_down = std::async(std::launch::async, [&] { return read_to_eof(client); });
    auto writer_down = std::async(std::launch::async, [&] { send_all_then_fin(upstream, down); });
    send_all_then_fin(client, up);
    writer_down.get();
    got_up = reader_up.get();
    got_down = reader_down.get();
  });
  EXPECT_TRUE(got_up == up) << "client -> upstream: " << got_up.size() << " of " << up.size() << " bytes";
  EXPECT_TRUE(got_down == down) << "upstream -> client: " << got_down.size() << " of " << down.size() << " bytes";
  EXPECT_EQ(r.bytes_up, up.size());
  EXPECT_EQ(r.bytes_down, down.size());
  EXPECT_EQ(r.end, relay_end::closed);
}

TEST_P(RelayStaging, SmallExchangesEachReadShortThenCloseFromUpstream) {
  constexpr int exchanges = 300;
  const relay_result r = run([&](tcp::socket& client, tcp::socket& upstream) {
    for (int i = 0; i < exchanges; ++i) {
      const auto request = pattern(32 + static_cast<std::size_t>(i % 7), static_cast<std::uint8_t>(i));
      net::write(client, net::buffer(request));
      std::vector<std::uint8_t> seen(request.size());
      net::read(upstream, net::buffer(seen));
      ASSERT_TRUE(seen == request) << "request " << i;
      net::write(upstream, net::buffer(seen));
      std::vector<std::uint8_t> echoed(request.size());
      net::read(client, net::buffer(echoed));
      ASSERT_TRUE(echoed == request) << "response " << i;
    }
    // The server closes first (as the benchmark's echo server does), then the client.
    upstream.shutdown(tcp::socket::shutdown_send);
    EXPECT_TRUE(read_to_eof(client).empty());
    client.shutdown(tcp::socket::shutdown_send);
    EXPECT_TRUE(read_to_eof(upstream).empty());
  });
  EXPECT_EQ(r.end, relay_end::closed);
  EXPECT_GT(r.bytes_up, 32u * exchanges);
  EXPECT_EQ(r.bytes_up, r.bytes_down);
}

TEST_P(RelayStaging, HalfCloseFromClientKeepsTheResponseFlowing) {
  const auto request = pattern(100000, 3);
  const auto response = pattern(3 << 20, 5);
  std::vector<std::uint8_t> got;
  const relay_result r = run([&](tcp::socket& client, tcp::socket& upstream) {
    send_all_then_fin(client, request);
    const auto seen = read_to_eof(upstream);  // the client's FIN arrives as EOF upstream
    EXPECT_TRUE(seen == request);
    send_all_then_fin(upstream, response);  // and the other direction still flows after it
    got = read_to_eof(client);
  });
  EXPECT_TRUE(got == response) << got.size() << " of " << response.size() << " bytes";
  EXPECT_EQ(r.end, relay_end::closed);
}

INSTANTIATE_TEST_SUITE_P(Staging, RelayStaging, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "SplicePipes" : "CopyBuffers";
                         });

}  // namespace
}  // namespace edgerelay::proxy
