// phase_deadline: one timer per session that bounds its short phases (handshake, connect, reply)
// without spawning anything: operations started with token() are cancelled when it expires.
#pragma once

#include <chrono>
#include <exception>
#include <type_traits>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// Cheaper than racing each phase against a timer (no parallel group, no child coroutines, no allocation per phase),
/// which matters at tens of thousands of sessions per second. Every operation of a phase must be
/// started with token(); one that is not (the resolver) is cancelled through watch().
/// Thread: the session's; settle() must be awaited before the object goes away.
class phase_deadline {
 public:
  explicit phase_deadline(const net::any_io_executor& ex) : timer_(ex) {}
  phase_deadline(const phase_deadline&) = delete;
  phase_deadline& operator=(const phase_deadline&) = delete;

  /// Starts a phase that must end within `limit`; starting a phase ends the previous one.
  void start(std::chrono::milliseconds limit);
  /// Ends the current phase before its limit.
  void stop();
  /// True once the current phase's limit passed; its pending operation ended with operation_aborted.
  bool expired() const noexcept { return expired_; }

  /// Completion token for an operation of the current phase: results as (error_code, ...).
  auto token() { return net::bind_cancellation_slot(signal_.slot(), use_ec); }
  /// The slot token() binds, for operations that take a slot instead of a token (TLS handshakes).
  net::cancellation_slot slot() { return signal_.slot(); }

  /// Cancels `r`'s pending resolve too when the phase expires (the resolver has no per-operation
  /// cancellation on Boost 1.81). Pass nullptr to forget it.
  void watch(tcp::resolver* r) noexcept { resolver_ = r; }

  /// Waits until no timer handler is pending, so none can touch this object after it is gone.
  net::awaitable<void> settle();

 private:
  net::steady_timer timer_;
  net::cancellation_signal signal_;
  tcp::resolver* resolver_ = nullptr;
  unsigned pending_ = 0;
  unsigned phase_ = 0;
  bool expired_ = false;
};

/// Awaits `body(dl)` with a phase_deadline `dl` of its own and returns what it returns. `dl` is
/// settled before it goes away, even when the body throws (only an allocation can), so no timer
/// handler outlives it; the body's frame, and all it read, are gone when this returns.
template <class Body>
auto with_phase_deadline(const net::any_io_executor& ex, Body body) -> std::invoke_result_t<Body&, phase_deadline&> {
  using result = typename std::invoke_result_t<Body&, phase_deadline&>::value_type;
  phase_deadline dl(ex);
  std::exception_ptr failure;
  if constexpr (std::is_void_v<result>) {
    try {
      co_await body(dl);
    } catch (...) {
      failure = std::current_exception();
    }
    co_await dl.settle();
    if (failure) {
      std::rethrow_exception(failure);
    }
  } else {
    result value{};
    try {
      value = co_await body(dl);
    } catch (...) {
      failure = std::current_exception();
    }
    co_await dl.settle();
    if (failure) {
      std::rethrow_exception(failure);
    }
    co_return value;
  }
}

}  // namespace edgerelay::proxy
