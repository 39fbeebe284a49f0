// with_deadline(): run a short phase (handshake, connect) against a timer; Boost 1.81 has no cancel_after.
#pragma once

#include <chrono>
#include <optional>
#include <variant>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// Sleeps for `d` and returns; never throws (a cancelled wait simply returns early).
net::awaitable<void> sleep_for(std::chrono::milliseconds d);

/// Runs `phase` until it finishes or `limit` passes; nullopt means the deadline won and the phase
/// was cancelled (terminal cancellation reaches its pending socket operation).
/// `phase` must not throw: in operator|| a throwing branch never wins (asio#900), so the timer would
/// run to its end.
template <class T>
net::awaitable<std::optional<T>> with_deadline(net::awaitable<T> phase, std::chrono::milliseconds limit) {
  using namespace net::experimental::awaitable_operators;
  std::variant<T, std::monostate> r = co_await (std::move(phase) || sleep_for(limit));
  if (r.index() == 0) {
    co_return std::optional<T>(std::move(std::get<0>(r)));
  }
  co_return std::nullopt;
}

}  // namespace edgerelay::proxy
