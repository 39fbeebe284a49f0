// One direction of a copying relay, for any pair of legs that read, write and half-close: the
// TLS relay (two client streams) and the message relay (a client stream and a message leg).
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/duplex.hpp"
#include "proxy/relay/message_leg.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy::copying {

/// The largest TLS record's payload: one read never returns more.
constexpr std::size_t chunk = 16 * 1024;

inline bool is_end_of_stream(const error_code& ec) {
  // A TLS peer that closes TCP without close_notify (most HTTPS clients do) ends its direction as
  // a FIN would; the bytes before it were authenticated.
  return ec == net::error::eof || ec == net::ssl::error::stream_truncated;
}

inline relay_end failure_of(const error_code& ec) {
  return ec == net::error::operation_aborted ? relay_end::aborted : relay_end::reset;
}

inline net::awaitable<std::pair<error_code, std::size_t>> read_some(tunnel::client_stream& from,
                                                                    net::mutable_buffer into) {
  auto [ec, n] = co_await from.async_read_some(into, use_ec);
  co_return std::pair{ec, n};
}
inline net::awaitable<std::pair<error_code, std::size_t>> read_some(message_leg& from, net::mutable_buffer into) {
  return from.read_some(into);
}
inline net::awaitable<std::pair<error_code, std::size_t>> write_all(tunnel::client_stream& to, net::const_buffer b) {
  auto [ec, n] = co_await net::async_write(to, b, use_ec);
  co_return std::pair{ec, n};
}
inline net::awaitable<std::pair<error_code, std::size_t>> write_all(message_leg& to, net::const_buffer b) {
  return to.write(b);
}
inline net::awaitable<error_code> shutdown_send(tunnel::client_stream& to) {
  return to.shutdown_send();
}
inline net::awaitable<error_code> shutdown_send(message_leg& to) {
  return to.shutdown_send();
}

/// Copies `from` to `to` until `from` ends or the duplex stops; `delivered` counts what `to` took.
template <class From, class To>
net::awaitable<void> one_way(From& from, To& to, std::uint64_t& delivered, duplex& d) {
  const auto buffer = std::make_unique<std::array<std::uint8_t, chunk>>();
  for (;;) {
    auto [ec, n] = co_await read_some(from, net::buffer(*buffer));
    if (d.stopped()) {
      co_return;
    }
    if (n > 0) {
      auto [write_ec, written] = co_await write_all(to, net::buffer(buffer->data(), n));
      delivered += written;
      d.touch();
      if (write_ec) {
        d.stop(failure_of(write_ec), write_ec);
        co_return;
      }
      if (d.stopped()) {
        co_return;
      }
    }
    if (!ec) continue;
    if (is_end_of_stream(ec)) {
      d.half_closed();
      // A peer that is already gone cannot take a close_notify (EPIPE): like shutdown(2) on plain
      // TCP, that is no failure. One that stops reading and blocks the flush is.
      const error_code shut = co_await shutdown_send(to);
      if (shut == net::error::timed_out) {
        d.stop(relay_end::reset, shut);
      }
      co_return;
    }
    d.stop(failure_of(ec), ec);
    co_return;
  }
}

}  // namespace edgerelay::proxy::copying
