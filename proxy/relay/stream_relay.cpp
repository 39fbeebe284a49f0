// The copy relay for TLS legs: one coroutine per direction under a duplex; plain pairs go to the
// splice relay.
#include "proxy/relay/stream_relay.hpp"

#include <array>
#include <memory>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/duplex.hpp"

namespace edgerelay::proxy {
namespace {

/// The largest TLS record's payload: one read never returns more.
constexpr std::size_t copy_chunk = 16 * 1024;

bool is_end_of_stream(const error_code& ec) {
  // A TLS peer that closes TCP without close_notify (most HTTPS clients do) ends its direction as
  // a FIN would; the bytes before it were authenticated.
  return ec == net::error::eof || ec == net::ssl::error::stream_truncated;
}

relay_end failure_of(const error_code& ec) {
  return ec == net::error::operation_aborted ? relay_end::aborted : relay_end::reset;
}

net::awaitable<void> copy_one_way(tunnel::client_stream& from, tunnel::client_stream& to, std::uint64_t& delivered,
                                  duplex& d) {
  const auto buffer = std::make_unique<std::array<std::uint8_t, copy_chunk>>();
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(net::buffer(*buffer), use_ec);
    if (d.stopped()) {
      co_return;
    }
    if (n > 0) {
      auto [write_ec, written] = co_await net::async_write(to, net::buffer(buffer->data(), n), use_ec);
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
      if (const error_code shut = co_await to.shutdown_send(); shut == net::error::timed_out) {
        d.stop(relay_end::reset, shut);
      }
      co_return;
    }
    d.stop(failure_of(ec), ec);
    co_return;
  }
}

net::awaitable<relay_result> copy_relay(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                        relay_options options) {
  duplex d(client.get_executor(), options.idle_timeout, options.fin_timeout);
  // A cancelled TLS stream is only closed afterwards (run_session does).
  d.add_leg(client.socket());
  d.add_leg(upstream.socket());
  relay_result r;
  const duplex_result ended =
      co_await d.run(copy_one_way(client, upstream, r.bytes_up, d), copy_one_way(upstream, client, r.bytes_down, d));
  r.end = ended.end;
  r.error = ended.error;
  co_return r;
}

}  // namespace

void start_stream_relay(tunnel::client_stream& client, tunnel::client_stream& upstream, relay_pools& pools,
                        relay_options options, relay_handler handler) {
  if (!client.is_tls() && !upstream.is_tls()) {
    start_relay(client.socket(), upstream.socket(), pools, options, std::move(handler));
    return;
  }
  net::co_spawn(client.get_executor(), copy_relay(client, upstream, options),
                [handler = std::move(handler)](std::exception_ptr failure, relay_result r) mutable {
                  if (failure) {
                    r.end = relay_end::reset;  // only an allocation failure can get here
                  }
                  std::move(handler)(r);
                });
}

}  // namespace edgerelay::proxy
