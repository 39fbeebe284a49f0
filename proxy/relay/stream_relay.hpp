// relay_streams(): the relay for session legs of which either may be TLS.
#pragma once

#include "proxy/core/asio.hpp"
#include "proxy/relay/message_leg.hpp"
#include "proxy/relay/relay.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// Relays both directions between `client` and `upstream` until both ended, with the semantics of
/// async_relay() (half-close, idle timeout, results). Two plain legs use the splice relay on their
/// sockets, started directly so an idle plain tunnel holds no coroutine frame; a TLS leg needs its
/// bytes decrypted in user space, so those tunnels copy through a buffer per direction in a
/// coroutine (a TLS leg holds ~34 KiB of record buffers anyway).
/// Half-close through TLS: the side that ended gets close_notify then FIN on the other leg.
/// Both streams and `pools` must outlive it. Thread: the streams' executor; never throws.
void start_stream_relay(tunnel::client_stream& client, tunnel::client_stream& upstream, relay_pools& pools,
                        relay_options options, relay_handler handler);

template <class Token>
auto async_relay_streams(tunnel::client_stream& client, tunnel::client_stream& upstream, relay_pools& pools,
                         relay_options options, Token&& token) {
  return net::async_initiate<Token, void(relay_result)>(
      [](auto handler, tunnel::client_stream* c, tunnel::client_stream* u, relay_pools* p, relay_options o) {
        start_stream_relay(*c, *u, *p, o, relay_handler(std::move(handler)));
      },
      token, &client, &upstream, &pools, options);
}

/// Relays both directions between a socket leg and a message leg (a tunnel door's client, or the
/// client mode's gateway tunnel), with the same semantics; `leg_is_client` says which side the
/// leg is, for the byte counts. Both legs and the stream must outlive it. Never throws.
void start_leg_relay(tunnel::client_stream& stream, message_leg& leg, bool leg_is_client, relay_options options,
                     relay_handler handler);

template <class Token>
auto async_relay_leg(tunnel::client_stream& stream, message_leg& leg, bool leg_is_client, relay_options options,
                     Token&& token) {
  return net::async_initiate<Token, void(relay_result)>(
      [](auto handler, tunnel::client_stream* s, message_leg* l, bool c, relay_options o) {
        start_leg_relay(*s, *l, c, o, relay_handler(std::move(handler)));
      },
      token, &stream, &leg, leg_is_client, options);
}

}  // namespace edgerelay::proxy
