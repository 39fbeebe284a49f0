// duplex implementation: the directions are co_spawned and counted; the watch owns the deadlines.
#include "proxy/relay/duplex.hpp"

#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

namespace edgerelay::proxy {

duplex::duplex(const net::any_io_executor& ex, std::chrono::milliseconds idle_timeout,
               std::chrono::milliseconds fin_timeout)
    : timer_(ex), idle_timeout_(idle_timeout), fin_timeout_(fin_timeout) {}

void duplex::half_closed() {
  if (half_closed_) {
    return;
  }
  half_closed_ = true;
  if (fin_timeout_ < idle_timeout_) {
    timer_.cancel();  // the watch re-arms for the nearer deadline
  }
}

void duplex::stop(relay_end why, const error_code& ec) {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  end_ = why;
  error_ = ec;
  for (std::size_t i = 0; i < leg_count_; ++i) {
    legs_[i].cancel(legs_[i].leg);
  }
  timer_.cancel();
}

void duplex::spawn(net::awaitable<void> direction) {
  ++running_;
  // No cancellation slot: a direction ends only through its legs' cancellation, never by an
  // exception thrown into it.
  net::co_spawn(timer_.get_executor(), std::move(direction),
                [this](const std::exception_ptr& failure) { direction_ended(failure); });
}

void duplex::direction_ended(const std::exception_ptr& failure) {
  --running_;
  if (failure) {
    // A direction handles its errors as results; only a failed allocation of a frame or buffer
    // can throw, and the transfer cannot go on without that direction.
    stop(relay_end::reset, make_error_code(boost::system::errc::not_enough_memory));
  } else if (!stopped_) {
    half_closed();
  }
  timer_.cancel();  // the watch re-arms, or returns once no direction runs
}

net::awaitable<duplex_result> duplex::watch(std::array<net::awaitable<void>, max_directions> directions) {
  for (net::awaitable<void>& direction : directions) {
    if (direction.valid()) {
      spawn(std::move(direction));
    }
  }
  while (running_ > 0) {
    if (stopped_) {
      timer_.expires_at(clock::time_point::max());  // woken by the last direction's end
    } else {
      const bool fin = half_closed_ && fin_timeout_ < idle_timeout_;
      const clock::time_point due = last_activity_ + (fin ? fin_timeout_ : idle_timeout_);
      if (clock::now() >= due) {
        stop(fin ? relay_end::fin_timeout : relay_end::idle_timeout, net::error::timed_out);
        continue;
      }
      timer_.expires_at(due);
    }
    co_await timer_.async_wait(use_ec);
    // The caller's cancellation must not throw at the next wait while directions still use this
    // object: it stops the transfer instead, and the state is cleared for the remaining waits.
    if ((co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none) {
      stop(relay_end::aborted, net::error::operation_aborted);
      co_await net::this_coro::reset_cancellation_state();
    }
  }
  co_return duplex_result{end_, error_};
}

}  // namespace edgerelay::proxy
