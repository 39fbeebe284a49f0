// The copy relay for TLS legs: two coroutines (one per direction) and an idle watch, raced with
// awaitable operators; plain pairs go to the splice relay.
#include "proxy/relay/stream_relay.hpp"

#include <array>
#include <memory>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

namespace edgerelay::proxy {
namespace {

using clock = std::chrono::steady_clock;

/// The largest TLS record's payload: one read never returns more.
constexpr std::size_t copy_chunk = 16 * 1024;

struct copy_state {
  copy_state(tunnel::client_stream& c, tunnel::client_stream& u) : client(c), upstream(u) {}
  tunnel::client_stream& client;
  tunnel::client_stream& upstream;
  clock::time_point last_activity = clock::now();
  bool ended = false;        ///< a failure, an abort or the idle timeout ended the relay
  bool half_closed = false;  ///< one direction has ended: fin_timeout applies
  bool rearm = false;        ///< the idle watch's wait was cut short to apply fin_timeout
  net::steady_timer* watch = nullptr;
  relay_end end = relay_end::closed;
  error_code error;

  void stop(relay_end why, const error_code& ec) {
    if (ended) return;
    ended = true;
    end = why;
    error = ec;
    // Wakes the other direction; a cancelled TLS stream is then only closed (run_session does).
    error_code ignored;
    client.socket().cancel(ignored);
    upstream.socket().cancel(ignored);
  }
};

bool is_end_of_stream(const error_code& ec) {
  // A TLS peer that closes TCP without close_notify (most HTTPS clients do) ends its direction as
  // a FIN would; the bytes before it were authenticated.
  return ec == net::error::eof || ec == net::ssl::error::stream_truncated;
}

net::awaitable<void> copy_one_way(tunnel::client_stream& from, tunnel::client_stream& to, std::uint64_t& delivered,
                                  copy_state& s) {
  const auto buffer = std::make_unique<std::array<std::uint8_t, copy_chunk>>();
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(net::buffer(*buffer), use_ec);
    if (n > 0) {
      auto [write_ec, written] = co_await net::async_write(to, net::buffer(buffer->data(), n), use_ec);
      delivered += written;
      s.last_activity = clock::now();
      if (write_ec) {
        s.stop(write_ec == net::error::operation_aborted ? relay_end::aborted : relay_end::reset, write_ec);
        co_return;
      }
    }
    if (!ec) continue;
    if (is_end_of_stream(ec)) {
      if (!s.half_closed && s.watch != nullptr) {
        s.half_closed = true;
        s.rearm = true;
        s.watch->cancel();
      }
      // A peer that is already gone cannot take a close_notify (EPIPE): like shutdown(2) on plain
      // TCP, that is no failure. One that stops reading and blocks the flush is.
      if (const error_code shut = co_await to.shutdown_send(); shut == net::error::timed_out) {
        s.stop(relay_end::reset, shut);
      }
      co_return;
    }
    s.stop(ec == net::error::operation_aborted ? relay_end::aborted : relay_end::reset, ec);
    co_return;
  }
}

net::awaitable<void> watch_idle(copy_state& s, relay_options options) {
  net::steady_timer timer(co_await net::this_coro::executor);
  s.watch = &timer;
  for (;;) {
    const bool fin = s.half_closed && options.fin_timeout < options.idle_timeout;
    const auto due = s.last_activity + (fin ? options.fin_timeout : options.idle_timeout);
    if (clock::now() >= due) {
      s.watch = nullptr;
      s.stop(fin ? relay_end::fin_timeout : relay_end::idle_timeout, net::error::timed_out);
      co_return;
    }
    timer.expires_at(due);
    auto [ec] = co_await timer.async_wait(use_ec);
    if (ec && !std::exchange(s.rearm, false)) {
      s.watch = nullptr;
      co_return;  // the directions ended first
    }
  }
}

net::awaitable<relay_result> copy_relay(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                        relay_options options) {
  using namespace net::experimental::awaitable_operators;
  copy_state s(client, upstream);
  relay_result r;
  co_await ((copy_one_way(client, upstream, r.bytes_up, s) && copy_one_way(upstream, client, r.bytes_down, s)) ||
            watch_idle(s, options));
  r.end = s.ended ? s.end : relay_end::closed;
  r.error = s.error;
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
