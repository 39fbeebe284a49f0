// The password verification pool: PBKDF2 runs on its own threads, never on a worker's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// One login to verify: `password` against `hash`, or, for a name that is not configured (`hash`
/// empty), config::verify_unknown_user(password, unknown_iterations), which costs the same and fails.
struct password_check {
  std::string hash;
  std::string password;
  unsigned unknown_iterations = 0;

  password_check() = default;
  password_check(std::string h, std::string p, unsigned unknown) noexcept
      : hash(std::move(h)), password(std::move(p)), unknown_iterations(unknown) {}
  password_check(password_check&&) noexcept = default;
  password_check& operator=(password_check&&) noexcept = default;
  password_check(const password_check&) = delete;
  password_check& operator=(const password_check&) = delete;
  ~password_check();  ///< wipes the password
};

/// The PBKDF2 run itself; touches no shared state.
bool run_password_check(const password_check& check);

/// A fixed set of threads and a bounded queue. A check of about 37 ms on a worker would stall
/// every session of that worker; here it stalls only logins. The threads run at a lower priority
/// (nice 10) than the workers, so a flood of failed logins takes the CPU the workers leave idle
/// rather than theirs. When the queue is full a check fails closed at once (no_buffer_space)
/// instead of waiting: the worker never blocks on the pool.
///
/// Thread-safe. The results are posted to the executor associated with the completion handler
/// (a session's coroutine: its worker), which must outlive stop(): the server stops the pool
/// before it destroys the workers' event loops.
class verify_pool {
 public:
  verify_pool(unsigned threads, std::size_t queue_limit);
  verify_pool(const verify_pool&) = delete;
  verify_pool& operator=(const verify_pool&) = delete;
  ~verify_pool();

  /// Completes with (error_code, bool matched): no error and the result of the check;
  /// net::error::no_buffer_space when `queue_limit` checks were already waiting;
  /// net::error::operation_aborted when the pool stopped before running it.
  template <class Token>
  auto async_verify(password_check check, Token&& token) {
    return net::async_initiate<Token, void(error_code, bool)>(
        [this](auto handler, password_check c) {
          using handler_type = decltype(handler);
          submit(std::make_unique<job_for<handler_type>>(std::move(handler), std::move(c)));
        },
        token, std::move(check));
  }

  /// Idempotent: finishes the checks that are running, aborts those still queued, joins the threads.
  void stop();

  unsigned threads() const noexcept { return static_cast<unsigned>(threads_.size()); }
  std::size_t queue_limit() const noexcept { return queue_limit_; }
  /// Checks run to the end (whatever their result).
  std::uint64_t verified() const noexcept { return verified_.load(std::memory_order_relaxed); }
  /// Checks refused because the queue was full.
  std::uint64_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }
  /// True at most once per second across all callers: whether to log the refusals now.
  bool report_due(std::chrono::steady_clock::time_point now) noexcept;

 private:
  struct job {
    explicit job(password_check c) : check(std::move(c)) {}
    virtual ~job() = default;
    /// Posts the result to the handler's executor; called once, on any thread.
    virtual void complete(error_code ec, bool matched) = 0;
    password_check check;
  };

  template <class Handler>
  class job_for final : public job {
   public:
    job_for(Handler h, password_check c)
        : job(std::move(c)),
          // Counted as work: the worker's event loop keeps running until the result is back.
          work_(net::prefer(net::get_associated_executor(h), net::execution::outstanding_work.tracked)),
          handler_(std::move(h)) {}
    void complete(error_code ec, bool matched) override {
      net::post(work_, net::append(std::move(handler_), ec, matched));
    }

   private:
    decltype(net::prefer(std::declval<net::associated_executor_t<Handler>>(),
                         net::execution::outstanding_work.tracked)) work_;
    Handler handler_;
  };

  void submit(std::unique_ptr<job> j);
  void run();

  std::size_t queue_limit_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<job>> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> verified_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::int64_t> last_report_{0};  ///< steady_clock ticks of the last report_due() that said yes
  std::vector<std::thread> threads_;
};

}  // namespace edgerelay::proxy
