// The relay: both directions at once between two connected TCP sockets, until both are closed.
#pragma once

#include <chrono>
#include <cstdint>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include "proxy/core/asio.hpp"
#include "proxy/relay/relay_pools.hpp"

namespace edgerelay::proxy {

struct relay_options {
  std::chrono::milliseconds idle_timeout{600000};
  /// Once one direction has ended (half-closed), the tunnel ends when nothing moves for this
  /// long, as HAProxy's client-fin/server-fin: a peer that neither reads nor closes cannot hold
  /// the tunnel's four descriptors for the whole idle timeout.
  std::chrono::milliseconds fin_timeout{30000};
  bool use_splice = true;  ///< splice(2) through pooled pipes; false: pooled user-space buffers
};

enum class relay_end : std::uint8_t {
  closed,        ///< both sides sent EOF and everything was delivered
  idle_timeout,  ///< nothing moved for idle_timeout
  fin_timeout,   ///< half-closed, and nothing moved for fin_timeout
  reset,         ///< a read or write failed (RST, EPIPE): both legs are abandoned
  aborted,       ///< a socket was closed under the relay (shutdown, recheck)
};

struct relay_result {
  std::uint64_t bytes_up = 0;    ///< delivered client -> upstream
  std::uint64_t bytes_down = 0;  ///< delivered upstream -> client
  relay_end end = relay_end::closed;
  error_code error;  ///< the failing call's error for `reset`
};

std::string_view to_string(relay_end e) noexcept;

using relay_handler = net::any_completion_handler<void(relay_result)>;

/// Starts the relay; `handler` runs once when it ends. Both sockets and `pools` must outlive it.
/// Both sockets must already be in non-blocking mode: Asio puts a socket there at its first
/// asynchronous operation; a socket that had none needs non_blocking(true) (one ioctl saved per leg).
/// Half-close is kept: EOF on one side becomes shutdown(send) on the other while the other direction
/// goes on. The direction that ends last leaves its FIN to the caller, which must close both sockets
/// when the handler runs (one shutdown(2) per tunnel saved). An idle tunnel holds no buffer or pipe,
/// one timer and ~200 bytes of state.
/// Thread: the sockets' executor; the handler is called on it.
void start_relay(tcp::socket& client, tcp::socket& upstream, relay_pools& pools, relay_options options,
                 relay_handler handler);

template <class Token>
auto async_relay(tcp::socket& client, tcp::socket& upstream, relay_pools& pools, relay_options options, Token&& token) {
  return net::async_initiate<Token, void(relay_result)>(
      [](auto handler, tcp::socket* c, tcp::socket* u, relay_pools* p, relay_options o) {
        start_relay(*c, *u, *p, o, relay_handler(std::move(handler)));
      },
      token, &client, &upstream, &pools, options);
}

}  // namespace edgerelay::proxy
