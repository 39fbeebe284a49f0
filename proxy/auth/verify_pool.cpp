// Verification threads, their queue and the PBKDF2 call.
#include "proxy/auth/verify_pool.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config/password.hpp"

namespace edgerelay::proxy {

password_check::~password_check() {
  if (!password.empty()) {
    OPENSSL_cleanse(password.data(), password.size());
  }
}

bool run_password_check(const password_check& check) {
  if (check.hash.empty()) {
    return config::verify_unknown_user(check.password, check.unknown_iterations);
  }
  return config::verify_password(check.hash, check.password);
}

verify_pool::verify_pool(unsigned threads, std::size_t queue_limit) : queue_limit_(queue_limit == 0 ? 1 : queue_limit) {
  const unsigned n = threads == 0 ? 1 : threads;
  threads_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this] { run(); });
  }
}

verify_pool::~verify_pool() {
  stop();
}

void verify_pool::submit(std::unique_ptr<job> j) {
  std::unique_lock lock(mu_);
  if (stopping_) {
    lock.unlock();
    j->complete(net::error::operation_aborted, false);
    return;
  }
  if (queue_.size() >= queue_limit_) {
    lock.unlock();
    rejected_.fetch_add(1, std::memory_order_relaxed);
    j->complete(net::error::no_buffer_space, false);
    return;
  }
  queue_.push_back(std::move(j));
  lock.unlock();
  wake_.notify_one();
}

void verify_pool::run() {
  // Per-thread on Linux: the workers keep their priority, only the verifications yield to them.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  ::pthread_setname_np(::pthread_self(), "edgerelay-auth");
  for (;;) {
    std::unique_ptr<job> j;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;  // stopping, and stop() took what was queued
      }
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    const bool matched = run_password_check(j->check);
    verified_.fetch_add(1, std::memory_order_relaxed);
    j->complete(error_code{}, matched);
  }
}

void verify_pool::stop() {
  std::deque<std::unique_ptr<job>> abandoned;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    abandoned.swap(queue_);
  }
  wake_.notify_all();
  for (auto& j : abandoned) {
    j->complete(net::error::operation_aborted, false);
  }
  abandoned.clear();
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
}

bool verify_pool::report_due(std::chrono::steady_clock::time_point now) noexcept {
  const std::int64_t ticks = now.time_since_epoch().count();
  const std::int64_t second =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::seconds(1)).count();
  std::int64_t last = last_report_.load(std::memory_order_relaxed);
  while (last == 0 || ticks - last >= second) {
    if (last_report_.compare_exchange_weak(last, ticks, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

}  // namespace edgerelay::proxy
