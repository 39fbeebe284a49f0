// The copy relay for TLS legs: one coroutine per direction under a duplex; plain pairs go to the
// splice relay.
#include "proxy/relay/stream_relay.hpp"

#include <boost/asio/co_spawn.hpp>

#include "proxy/relay/copy_direction.hpp"
#include "proxy/relay/duplex.hpp"

namespace edgerelay::proxy {
namespace {

net::awaitable<relay_result> copy_relay(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                        relay_options options) {
  duplex d(client.get_executor(), options.idle_timeout, options.fin_timeout);
  // A cancelled TLS stream is only closed afterwards (run_session does).
  d.add_leg(client.socket());
  d.add_leg(upstream.socket());
  relay_result r;
  const duplex_result ended = co_await d.run(copying::one_way(client, upstream, r.bytes_up, d),
                                             copying::one_way(upstream, client, r.bytes_down, d));
  r.end = ended.end;
  r.error = ended.error;
  co_return r;
}

/// The message relay: `leg` is the client's side when `leg_is_client`, else the upstream's.
net::awaitable<relay_result> leg_relay(tunnel::client_stream& stream, message_leg& leg, bool leg_is_client,
                                       relay_options options) {
  duplex d(stream.get_executor(), options.idle_timeout, options.fin_timeout);
  d.add_leg(stream.socket());
  d.add_leg(leg);
  relay_result r;
  std::uint64_t& to_stream = leg_is_client ? r.bytes_up : r.bytes_down;
  std::uint64_t& to_leg = leg_is_client ? r.bytes_down : r.bytes_up;
  const duplex_result ended =
      co_await d.run(copying::one_way(leg, stream, to_stream, d), copying::one_way(stream, leg, to_leg, d));
  r.end = ended.end;
  r.error = ended.error;
  co_return r;
}

void spawn_relay(const net::any_io_executor& ex, net::awaitable<relay_result> relay, relay_handler handler) {
  net::co_spawn(ex, std::move(relay),
                [handler = std::move(handler)](std::exception_ptr failure, relay_result r) mutable {
                  if (failure) {
                    r.end = relay_end::reset;  // only an allocation failure can get here
                  }
                  std::move(handler)(r);
                });
}

}  // namespace

void start_stream_relay(tunnel::client_stream& client, tunnel::client_stream& upstream, relay_pools& pools,
                        relay_options options, relay_handler handler) {
  if (!client.is_tls() && !upstream.is_tls()) {
    start_relay(client.socket(), upstream.socket(), pools, options, std::move(handler));
    return;
  }
  spawn_relay(client.get_executor(), copy_relay(client, upstream, options), std::move(handler));
}

void start_leg_relay(tunnel::client_stream& stream, message_leg& leg, bool leg_is_client, relay_options options,
                     relay_handler handler) {
  spawn_relay(stream.get_executor(), leg_relay(stream, leg, leg_is_client, options), std::move(handler));
}

}  // namespace edgerelay::proxy
