// duplex on its own, over loopback sockets: the idle and fin deadlines, stop() from one direction
// ending the others through their legs' cancellation, a clean end, a throwing direction and a
// cancelled caller, with no exception reaching the caller.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/duplex.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

/// A connected loopback pair: `near` belongs to the duplex, `far` is driven by the test.
struct leg {
  explicit leg(net::io_context& ioc) : near(ioc), far(ioc) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    far.connect(acceptor.local_endpoint());
    acceptor.accept(near);
  }
  tcp::socket near;
  tcp::socket far;
};

/// What one direction saw when it returned.
struct direction_end {
  bool returned = false;
  error_code ec;
  std::size_t bytes = 0;
};

/// Reads `from` as a direction does: touches on every read, returns cleanly on EOF or any error,
/// and stops the duplex with `reset` when it reads an 's'.
net::awaitable<void> reader(tcp::socket& from, duplex& d, direction_end& seen) {
  std::array<std::uint8_t, 256> buf;
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(net::buffer(buf), use_ec);
    seen.bytes += n;
    if (ec || d.stopped()) {
      seen.ec = ec;
      seen.returned = true;
      co_return;
    }
    d.touch();
    if (buf[n - 1] == 's') {
      seen.returned = true;
      d.stop(relay_end::reset, net::error::connection_reset);
      co_return;
    }
  }
}

net::awaitable<void> thrower() {
  co_await net::post(co_await net::this_coro::executor, net::use_awaitable);
  throw std::runtime_error("a direction that cannot go on");
}

/// True when the io_context has no work left: no timer wait or operation outlived the run.
bool nothing_left(net::io_context& ioc) {
  ioc.restart();
  const auto started = clock::now();
  ioc.run_for(1s);
  return clock::now() - started < 500ms;
}

struct outcome_of_run {
  std::optional<duplex_result> result;
  std::exception_ptr escaped;
  clock::duration took{};
};

/// Runs `transfer` until it completes or 10 s pass (then the test fails instead of hanging).
outcome_of_run drive(net::io_context& ioc, net::awaitable<duplex_result> transfer, net::cancellation_slot slot = {}) {
  outcome_of_run out;
  const auto started = clock::now();
  bool done = false;
  net::co_spawn(ioc, std::move(transfer), net::bind_cancellation_slot(slot, [&](std::exception_ptr e, duplex_result r) {
                  done = true;
                  out.escaped = e;
                  if (!e) out.result = r;
                  out.took = clock::now() - started;
                }));
  const auto limit = clock::now() + 10s;
  while (!done && clock::now() < limit) {
    ioc.run_for(20ms);
  }
  EXPECT_TRUE(done) << "the duplex did not end within 10 s";
  return out;
}

net::awaitable<duplex_result> two_readers(leg& a, leg& b, std::chrono::milliseconds idle, std::chrono::milliseconds fin,
                                          std::array<direction_end, 2>& seen) {
  duplex d(co_await net::this_coro::executor, idle, fin);
  d.add_leg(a.near);
  d.add_leg(b.near);
  co_return co_await d.run(reader(a.near, d, seen[0]), reader(b.near, d, seen[1]));
}

TEST(Duplex, IdleTimeoutCancelsEveryDirection) {
  net::io_context ioc;
  leg a(ioc), b(ioc);
  std::array<direction_end, 2> seen;
  const outcome_of_run r = drive(ioc, two_readers(a, b, 200ms, 30s, seen));
  ASSERT_TRUE(r.result);
  EXPECT_FALSE(r.escaped);
  EXPECT_EQ(r.result->end, relay_end::idle_timeout);
  EXPECT_EQ(r.result->error, net::error::timed_out);
  EXPECT_GE(r.took, 190ms);
  EXPECT_LT(r.took, 3s);
  for (const direction_end& s : seen) {
    EXPECT_TRUE(s.returned);
    EXPECT_EQ(s.ec, net::error::operation_aborted) << "a direction ended by its leg's cancellation";
  }
  EXPECT_TRUE(nothing_left(ioc)) << "the watch's timer wait outlived the run";
}

TEST(Duplex, TrafficPostponesTheIdleDeadline) {
  net::io_context ioc;
  leg a(ioc), b(ioc);
  std::array<direction_end, 2> seen;
  std::thread sender([&] {
    for (int i = 0; i < 8; ++i) {  // one byte every 60 ms for ~480 ms, each within the 200 ms idle
      std::this_thread::sleep_for(60ms);
      net::write(a.far, net::buffer("x", 1));
    }
  });
  const outcome_of_run r = drive(ioc, two_readers(a, b, 200ms, 30s, seen));
  sender.join();
  ASSERT_TRUE(r.result);
  EXPECT_EQ(r.result->end, relay_end::idle_timeout);
  EXPECT_EQ(seen[0].bytes, 8u);
  EXPECT_GE(r.took, 480ms + 190ms) << "the idle deadline counts from the last touch()";
  EXPECT_LT(r.took, 4s);
}

TEST(Duplex, FinTimeoutAppliesOnceOneDirectionEndedCleanly) {
  net::io_context ioc;
  leg a(ioc), b(ioc);
  std::array<direction_end, 2> seen;
  a.far.shutdown(tcp::socket::shutdown_send);  // direction 0 reads EOF at once and returns
  const outcome_of_run r = drive(ioc, two_readers(a, b, 10s, 250ms, seen));
  ASSERT_TRUE(r.result);
  EXPECT_EQ(r.result->end, relay_end::fin_timeout);
  EXPECT_EQ(r.result->error, net::error::timed_out);
  EXPECT_EQ(seen[0].ec, net::error::eof);
  EXPECT_EQ(seen[1].ec, net::error::operation_aborted);
  EXPECT_GE(r.took, 240ms);
  EXPECT_LT(r.took, 3s) << "the fin deadline, not the 10 s idle one, ended it";
}

TEST(Duplex, FinEqualToIdleBehavesAsIdle) {
  net::io_context ioc;
  leg a(ioc), b(ioc);
  std::array<direction_end, 2> seen;
  a.far.shutdown(tcp::socket::shutdown_send);
  const outcome_of_run r = drive(ioc, two_readers(a, b, 250ms, 250ms, seen));
  ASSERT_TRUE(r.result);
  EXPECT_EQ(r.result->end, relay_end::idle_timeout);
  EXPECT_GE(r.took, 240ms);
}

TEST(Duplex, StopFromOneDirectionCancelsTheOther) {
  net::io_context ioc;
  leg a(ioc), b(ioc);
  std::array<direction_end, 2> seen;
  net::write(a.far, net::buffer("s", 1));
  const outcome_of_run r = drive(ioc, two_readers(a, b, 10s, 10s, seen));
  ASSERT_TRUE(r.result);
  EXPECT_FALSE(r.escaped);
  EXPECT_EQ(r.result->end, relay_end::reset);
  EXPECT_EQ(r.result->error, net::error::connection_reset) << "the first stop()'s error is the result's";
  EXPECT_TRUE(seen[0].returned);
  EXPECT_EQ(seen[1].ec, net::error::operation_aborted) << "the other direction's pending read was cancelled";
  EXPECT_LT(r.took, 2s) << "ended by stop(), not by a deadline";
}

TEST(Duplex, BothDirectionsEndingCleanlyIsClosed) {
  net::io_context ioc;
  leg a(ioc), b(ioc);
  std::array<direction_end, 2> seen;
  net::write(b.far, net::buffer("hello", 5));
  a.far.shutdown(tcp::socket::shutdown_send);
  b.far.shutdown(tcp::socket::shutdown_send);
  const outcome_of_run r = drive(ioc, two_readers(a, b, 10s, 10s, seen));
  ASSERT_TRUE(r.result);
  EXPECT_EQ(r.result->end, relay_end::closed);
  EXPECT_FALSE(r.result->error);
  EXPECT_EQ(seen[1].bytes, 5u);
  EXPECT_LT(r.took, 2s) << "the run returns with its last direction, not at a deadline";
  EXPECT_TRUE(nothing_left(ioc)) << "something of the duplex is left waiting";
}

TEST(Duplex, AThrowingDirectionIsAResetNotAnEscapedException) {
  net::io_context ioc;
  leg a(ioc);
  direction_end seen;
  auto transfer = [&]() -> net::awaitable<duplex_result> {
    duplex d(co_await net::this_coro::executor, 10s, 10s);
    d.add_leg(a.near);
    co_return co_await d.run(reader(a.near, d, seen), thrower());
  };
  const outcome_of_run r = drive(ioc, transfer());
  ASSERT_TRUE(r.result);
  EXPECT_FALSE(r.escaped);
  EXPECT_EQ(r.result->end, relay_end::reset);
  EXPECT_EQ(seen.ec, net::error::operation_aborted);
}

TEST(Duplex, ACancelledCallerStopsTheTransferAsAborted) {
  net::io_context ioc;
  leg a(ioc), b(ioc);
  std::array<direction_end, 2> seen;
  net::cancellation_signal cancel;
  net::steady_timer soon(ioc, 150ms);
  soon.async_wait([&](const error_code&) { cancel.emit(net::cancellation_type::terminal); });
  const outcome_of_run r = drive(ioc, two_readers(a, b, 10s, 10s, seen), cancel.slot());
  ASSERT_TRUE(r.result);
  EXPECT_FALSE(r.escaped) << "the caller's cancellation must not throw into the run";
  EXPECT_EQ(r.result->end, relay_end::aborted);
  EXPECT_EQ(seen[0].ec, net::error::operation_aborted);
  EXPECT_EQ(seen[1].ec, net::error::operation_aborted);
  EXPECT_LT(r.took, 2s);
}

/// A control connection and two UDP sockets, as an association has: the control's EOF stops the
/// transfer as closed, and both pending receives are cancelled.
TEST(Duplex, ThreeDirectionsOverTcpAndUdpLegs) {
  net::io_context ioc;
  leg control(ioc);
  udp::socket front(ioc, udp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  udp::socket back(ioc, udp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  std::array<error_code, 2> received;
  auto receive = [](udp::socket& s, error_code& out) -> net::awaitable<void> {
    std::array<std::uint8_t, 64> buf;
    udp::endpoint from;
    auto [ec, n] = co_await s.async_receive_from(net::buffer(buf), from, use_ec);
    out = ec;
  };
  auto watch_control = [](tcp::socket& s, duplex& d) -> net::awaitable<void> {
    std::array<std::uint8_t, 64> buf;
    auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_ec);
    d.stop(relay_end::closed, ec);
  };
  auto transfer = [&]() -> net::awaitable<duplex_result> {
    duplex d(co_await net::this_coro::executor, 10s, 10s);
    d.add_leg(control.near);
    d.add_leg(front);
    d.add_leg(back);
    co_return co_await d.run(watch_control(control.near, d), receive(front, received[0]), receive(back, received[1]));
  };
  control.far.shutdown(tcp::socket::shutdown_send);
  const outcome_of_run r = drive(ioc, transfer());
  ASSERT_TRUE(r.result);
  EXPECT_EQ(r.result->end, relay_end::closed);
  EXPECT_EQ(r.result->error, net::error::eof);
  EXPECT_EQ(received[0], net::error::operation_aborted);
  EXPECT_EQ(received[1], net::error::operation_aborted);
  EXPECT_LT(r.took, 2s);
}

}  // namespace
}  // namespace edgerelay::proxy
