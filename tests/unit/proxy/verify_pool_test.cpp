// verify_pool: results come back on the caller's executor, the caller's loop keeps running while
// PBKDF2 runs, a full queue fails closed at once, stop() aborts what waits and joins.
#include "proxy/auth/verify_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include "config/password.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;

struct outcome_of_check {
  error_code ec;
  bool matched = false;
  std::thread::id completed_on;
};

/// Runs one async_verify in a coroutine on `io` and records how it completed.
net::awaitable<void> verify_into(verify_pool& pool, password_check check, std::optional<outcome_of_check>& out) {
  auto [ec, matched] = co_await pool.async_verify(std::move(check), use_ec);
  out = outcome_of_check{ec, matched, std::this_thread::get_id()};
}

TEST(VerifyPool, ResultsArePostedToTheCallersExecutor) {
  verify_pool pool(1, 8);
  const std::string hash = config::hash_password("right", 1000);
  net::io_context io;
  std::optional<outcome_of_check> right, wrong, unknown;
  net::co_spawn(io, verify_into(pool, password_check(hash, "right", 0), right), net::detached);
  net::co_spawn(io, verify_into(pool, password_check(hash, "wrong", 0), wrong), net::detached);
  net::co_spawn(io, verify_into(pool, password_check("", "right", 1000), unknown), net::detached);
  // No work guard: run() returns only because each pending check counts as work on `io`.
  io.run();
  ASSERT_TRUE(right && wrong && unknown);
  EXPECT_FALSE(right->ec);
  EXPECT_TRUE(right->matched);
  EXPECT_FALSE(wrong->ec);
  EXPECT_FALSE(wrong->matched);
  EXPECT_FALSE(unknown->ec);
  EXPECT_FALSE(unknown->matched) << "an unknown user never matches";
  for (const auto* o : {&*right, &*wrong, &*unknown}) {
    EXPECT_EQ(o->completed_on, std::this_thread::get_id()) << "completion must run on the caller's loop";
  }
  EXPECT_EQ(pool.verified(), 3U);
  EXPECT_EQ(pool.rejected(), 0U);
}

TEST(VerifyPool, TheCallersLoopKeepsRunningDuringAVerification) {
  verify_pool pool(1, 8);
  const std::string slow = config::hash_password("pw", config::max_pbkdf2_iterations);
  net::io_context io;
  std::optional<outcome_of_check> result;
  const auto started = std::chrono::steady_clock::now();
  net::co_spawn(io, verify_into(pool, password_check(slow, "nope", 0), result), net::detached);
  // Ticks of 5 ms on the same loop while the check runs; record the largest gap between them.
  std::chrono::steady_clock::duration longest_gap{};
  int ticks = 0;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        net::steady_timer timer(co_await net::this_coro::executor);
        auto last = std::chrono::steady_clock::now();
        while (!result && ticks < 10000) {
          timer.expires_after(5ms);
          co_await timer.async_wait(use_ec);
          const auto now = std::chrono::steady_clock::now();
          longest_gap = std::max(longest_gap, now - last);
          last = now;
          ++ticks;
        }
      },
      net::detached);
  io.run();
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->matched);
  // A verification on the loop itself would make one gap as long as the whole check.
  EXPECT_GT(ticks, 3);
  EXPECT_LT(longest_gap, took / 2) << "the loop stalled: longest gap "
                                   << std::chrono::duration_cast<std::chrono::milliseconds>(longest_gap).count()
                                   << " ms of a " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                   << " ms check";
}

TEST(VerifyPool, AFullQueueFailsClosedAtOnce) {
  verify_pool pool(1, 2);
  const std::string slow = config::hash_password("pw", 200'000);
  net::io_context io;
  constexpr int n = 10;
  std::vector<std::optional<outcome_of_check>> results(n);
  for (auto& r : results) {
    net::co_spawn(io, verify_into(pool, password_check(slow, "pw", 0), r), net::detached);
  }
  io.run();
  int refused = 0;
  int verified = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r);
    if (r->ec == net::error::no_buffer_space) {
      ++refused;
      EXPECT_FALSE(r->matched);
    } else {
      EXPECT_FALSE(r->ec) << r->ec.message();
      EXPECT_TRUE(r->matched);
      ++verified;
    }
  }
  // One running and two queued at most; whether the thread took the first before the others came
  // is up to the scheduler.
  EXPECT_GE(refused, n - 3);
  EXPECT_LE(refused, n - 2);
  EXPECT_EQ(static_cast<std::uint64_t>(refused), pool.rejected());
  EXPECT_EQ(static_cast<std::uint64_t>(verified), pool.verified());
}

TEST(VerifyPool, StopAbortsWhatWaitsAndLaterChecksAbortAtOnce) {
  auto pool = std::make_unique<verify_pool>(1, 16);
  const std::string slow = config::hash_password("pw", 300'000);
  net::io_context io;
  auto guard = net::make_work_guard(io);
  std::thread loop([&] { io.run(); });
  constexpr int n = 6;
  std::vector<std::optional<outcome_of_check>> results(n);
  std::atomic<int> done{0};
  for (auto& r : results) {
    net::co_spawn(io, verify_into(*pool, password_check(slow, "pw", 0), r),
                  [&](const std::exception_ptr&) { done.fetch_add(1); });
  }
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pool->verified() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);  // let the thread take one
  }
  pool->stop();
  pool->stop();  // idempotent
  std::optional<outcome_of_check> late;
  net::co_spawn(io, verify_into(*pool, password_check(slow, "pw", 0), late),
                [&](const std::exception_ptr&) { done.fetch_add(1); });
  while (done.load() < n + 1 && std::chrono::steady_clock::now() < deadline + 5s) {
    std::this_thread::sleep_for(1ms);
  }
  guard.reset();
  loop.join();
  ASSERT_EQ(done.load(), n + 1);
  int aborted = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r);
    aborted += r->ec == net::error::operation_aborted;
  }
  EXPECT_GE(aborted, 1) << "the queued checks are aborted, not run";
  EXPECT_EQ(static_cast<std::uint64_t>(n - aborted), pool->verified());
  ASSERT_TRUE(late);
  EXPECT_EQ(late->ec, net::error::operation_aborted);
  pool.reset();  // the threads are already joined; destruction does not wait
}

}  // namespace
}  // namespace edgerelay::proxy
