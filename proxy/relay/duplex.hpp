// duplex: the directions of one transfer (client -> upstream, upstream -> client, a control
// connection), their idle and fin deadlines, and the one way they are stopped.
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <optional>

#include "proxy/core/asio.hpp"
#include "proxy/relay/relay.hpp"

namespace edgerelay::proxy {

struct duplex_result {
  relay_end end = relay_end::closed;
  error_code error;  ///< what stop() was given: the failing call's error, timed_out for a deadline
};

/// Runs the directions of one transfer at once, each in its own coroutine, watched by one timer:
/// - idle: nothing moved (touch()) for `idle_timeout` ends the transfer with idle_timeout;
/// - fin: once a direction ended cleanly (half_closed(), or returning without stop()), the rest
///   must move within `fin_timeout` or the transfer ends with fin_timeout (fin >= idle: idle only);
/// - stop(): the first call decides the result and cancels every registered leg's pending
///   operation, so each direction sees operation_aborted (use_ec) and returns; none throws.
/// A direction checks stopped() after each await: an operation that completed just before stop()
/// does not see the cancellation.
///
/// The object lives in the caller's frame and must outlive the co_await of run(). No exception is
/// used for control flow: the directions are spawned without a cancellation slot, and the watch
/// never waits in a cancelled state. An idle transfer holds one frame per direction, the watch's
/// frame and this object. Thread: the executor's; touch() is a clock read and a store.
class duplex {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t max_legs = 3;
  static constexpr std::size_t max_directions = 3;

  duplex(const net::any_io_executor& ex, std::chrono::milliseconds idle_timeout, std::chrono::milliseconds fin_timeout);
  duplex(const duplex&) = delete;
  duplex& operator=(const duplex&) = delete;

  /// Registers a socket (anything with cancel(error_code&)) whose pending operations stop()
  /// cancels. At most max_legs; the leg must outlive the run.
  template <class Leg>
  void add_leg(Leg& leg) noexcept {
    if (leg_count_ < max_legs) {
      legs_[leg_count_++] = leg_ref{&leg, [](void* p) noexcept {
                                      error_code ignored;
                                      static_cast<Leg*>(p)->cancel(ignored);
                                    }};
    }
  }

  void touch() noexcept { last_activity_ = clock::now(); }
  /// One direction has ended cleanly; the others now run under fin_timeout.
  void half_closed();
  /// Ends the transfer for `why`; only the first call counts.
  void stop(relay_end why, const error_code& ec);
  bool stopped() const noexcept { return stopped_; }

  struct read_result {
    error_code ec;
    std::size_t n = 0;
  };
  /// One read of a direction from `from`: nullopt when the transfer stopped before or during it
  /// (the bytes of a read that completed as it stopped are dropped), else the read's result.
  template <class Stream>
  net::awaitable<std::optional<read_result>> read_some(Stream& from, net::mutable_buffer into) {
    if (stopped_) {
      co_return std::nullopt;
    }
    auto [ec, n] = co_await from.async_read_some(into, use_ec);
    if (stopped_) {
      co_return std::nullopt;
    }
    co_return read_result{ec, n};
  }

  /// Starts every direction, waits until all of them returned, and gives the first stop()'s
  /// reason (closed when none was called). A cancelled caller stops the transfer as aborted.
  template <std::same_as<net::awaitable<void>>... Directions>
  net::awaitable<duplex_result> run(Directions... directions) {
    static_assert(sizeof...(Directions) > 0 && sizeof...(Directions) <= max_directions);
    return watch(std::array<net::awaitable<void>, max_directions>{std::move(directions)...});
  }

 private:
  struct leg_ref {
    void* leg = nullptr;
    void (*cancel)(void*) noexcept = nullptr;
  };

  net::awaitable<duplex_result> watch(std::array<net::awaitable<void>, max_directions> directions);
  void spawn(net::awaitable<void> direction);
  void direction_ended(const std::exception_ptr& failure);

  net::steady_timer timer_;  ///< the duplex's only timer: idle and fin deadlines, and the end of the run
  clock::time_point last_activity_ = clock::now();
  std::chrono::milliseconds idle_timeout_;
  std::chrono::milliseconds fin_timeout_;
  std::array<leg_ref, max_legs> legs_{};
  std::size_t leg_count_ = 0;
  unsigned running_ = 0;
  bool half_closed_ = false;
  bool stopped_ = false;
  relay_end end_ = relay_end::closed;
  error_code error_;
};

}  // namespace edgerelay::proxy
