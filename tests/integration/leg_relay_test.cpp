// The message relay (start_leg_relay) between a socket leg and a message leg: bytes both ways in
// order, half-close carried each way, the idle deadline, and the leg counted as client or upstream.
// The message leg here frames its bytes on a loopback socket ('d' + u32 length + bytes, 'f' for
// its fin), so the test drives its far end as a tunnel client would.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/relay_pools.hpp"
#include "proxy/relay/stream_relay.hpp"
#include "tests/integration/loopback_leg.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;

/// A message leg whose messages are frames on a socket.
class framed_leg final : public message_leg {
 public:
  explicit framed_leg(tcp::socket& s) : socket_(s) {}

  net::awaitable<std::pair<error_code, std::size_t>> read_some(net::mutable_buffer into,
                                                               net::cancellation_slot slot) override {
    while (pending_ == 0) {
      std::array<std::uint8_t, 5> head{};
      auto [ec, n] = co_await net::async_read(socket_, net::buffer(head), net::bind_cancellation_slot(slot, use_ec));
      if (ec) co_return std::pair{ec, std::size_t{0}};
      if (head[0] == 'f') co_return std::pair{error_code(net::error::eof), std::size_t{0}};
      pending_ = (std::size_t{head[1]} << 24) | (std::size_t{head[2]} << 16) | (std::size_t{head[3]} << 8) | head[4];
    }
    const std::size_t want = std::min(pending_, into.size());
    auto [ec, n] =
        co_await net::async_read(socket_, net::buffer(into.data(), want), net::bind_cancellation_slot(slot, use_ec));
    pending_ -= n;
    co_return std::pair{ec, n};
  }

  net::awaitable<std::pair<error_code, std::size_t>> write(net::const_buffer bytes,
                                                           net::cancellation_slot slot) override {
    const auto n = static_cast<std::uint32_t>(bytes.size());
    std::vector<std::uint8_t> frame(5 + bytes.size());
    frame[0] = 'd';
    frame[1] = static_cast<std::uint8_t>(n >> 24);
    frame[2] = static_cast<std::uint8_t>(n >> 16);
    frame[3] = static_cast<std::uint8_t>(n >> 8);
    frame[4] = static_cast<std::uint8_t>(n);
    std::memcpy(frame.data() + 5, bytes.data(), bytes.size());
    auto [ec, written] =
        co_await net::async_write(socket_, net::buffer(frame), net::bind_cancellation_slot(slot, use_ec));
    co_return std::pair{ec, ec ? std::size_t{0} : bytes.size()};
  }

  net::awaitable<error_code> shutdown_send() override {
    const std::array<std::uint8_t, 5> fin{'f', 0, 0, 0, 0};
    auto [ec, n] = co_await net::async_write(socket_, net::buffer(fin), use_ec);
    co_return ec;
  }

  void cancel(error_code& ec) noexcept override { socket_.cancel(ec); }
  void close() noexcept override {
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  tcp::socket& socket_;
  std::size_t pending_ = 0;
};

void send_frame(tcp::socket& s, const std::string& bytes) {
  const auto n = static_cast<std::uint32_t>(bytes.size());
  std::string frame{'d', static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                    static_cast<char>(n)};
  net::write(s, net::buffer(frame + bytes));
}

std::string read_frames(tcp::socket& s, std::size_t total) {
  std::string got;
  while (got.size() < total) {
    std::array<std::uint8_t, 5> head{};
    net::read(s, net::buffer(head));
    EXPECT_EQ(head[0], 'd');
    const std::size_t n =
        (std::size_t{head[1]} << 24) | (std::size_t{head[2]} << 16) | (std::size_t{head[3]} << 8) | head[4];
    std::string part(n, '\0');
    net::read(s, net::buffer(part));
    got += part;
  }
  return got;
}

struct relay_run {
  net::io_context ioc;
  leg stream_side{ioc};
  leg message_side{ioc};
  tunnel::client_stream stream{std::move(stream_side.near)};
  framed_leg framed{message_side.near};
  relay_pools pools;
  std::optional<relay_result> result;

  void start(bool leg_is_client, relay_options opts = {}) {
    message_side.near.non_blocking(true);
    start_leg_relay(stream, framed, leg_is_client, opts, [this](relay_result r) { result = r; });
  }
};

TEST(LegRelay, BytesBothWaysInOrderAndHalfCloseEachWay) {
  relay_run run;
  run.start(/*leg_is_client=*/true);
  std::thread driver([&] {
    std::string big(300000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
    send_frame(run.message_side.far, big.substr(0, 1));
    send_frame(run.message_side.far, big.substr(1));
    std::string seen(big.size(), '\0');
    net::read(run.stream_side.far, net::buffer(seen));
    EXPECT_EQ(seen, big);
    // The leg's fin becomes a FIN on the socket leg, while the other direction goes on.
    const std::array<std::uint8_t, 5> fin{'f', 0, 0, 0, 0};
    net::write(run.message_side.far, net::buffer(fin));
    std::array<std::uint8_t, 1> one{};
    error_code ec;
    net::read(run.stream_side.far, net::buffer(one), ec);
    EXPECT_EQ(ec, net::error::eof);
    net::write(run.stream_side.far, net::buffer(std::string("downstream after the fin")));
    EXPECT_EQ(read_frames(run.message_side.far, 24), "downstream after the fin");
    // The socket's FIN becomes the leg's fin frame.
    run.stream_side.far.shutdown(tcp::socket::shutdown_send);
    std::array<std::uint8_t, 5> head{};
    net::read(run.message_side.far, net::buffer(head));
    EXPECT_EQ(head[0], 'f');
  });
  run.ioc.run_for(10s);
  driver.join();
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->end, relay_end::closed);
  EXPECT_EQ(run.result->bytes_up, 300000U);  // the leg is the client: its bytes go up
  EXPECT_EQ(run.result->bytes_down, 24U);
}

TEST(LegRelay, AnUpstreamLegCountsItsBytesAsDownstream) {
  relay_run run;
  run.start(/*leg_is_client=*/false);
  std::thread driver([&] {
    net::write(run.stream_side.far, net::buffer(std::string("query")));
    EXPECT_EQ(read_frames(run.message_side.far, 5), "query");
    send_frame(run.message_side.far, "answer!");
    std::string seen(7, '\0');
    net::read(run.stream_side.far, net::buffer(seen));
    EXPECT_EQ(seen, "answer!");
    run.stream_side.far.shutdown(tcp::socket::shutdown_send);
    const std::array<std::uint8_t, 5> fin{'f', 0, 0, 0, 0};
    net::write(run.message_side.far, net::buffer(fin));
  });
  run.ioc.run_for(10s);
  driver.join();
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->end, relay_end::closed);
  EXPECT_EQ(run.result->bytes_up, 5U);
  EXPECT_EQ(run.result->bytes_down, 7U);
}

TEST(LegRelay, NothingMovingEndsAtTheIdleDeadlineThroughTheLegsCancel) {
  relay_run run;
  const auto started = std::chrono::steady_clock::now();
  run.start(true, relay_options{.idle_timeout = 200ms, .fin_timeout = 200ms, .use_splice = false});
  run.ioc.run_for(5s);
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->end, relay_end::idle_timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST(LegRelay, AResetMessageTransportEndsTheRelayAsReset) {
  relay_run run;
  run.start(true);
  std::thread driver([&] {
    send_frame(run.message_side.far, "partial");
    std::string seen(7, '\0');
    net::read(run.stream_side.far, net::buffer(seen));
    run.message_side.far.set_option(net::socket_base::linger(true, 0));
    run.message_side.far.close();  // RST, mid-stream: not a fin
  });
  run.ioc.run_for(10s);
  driver.join();
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->end, relay_end::reset);
}

}  // namespace
}  // namespace edgerelay::proxy
