// relay_streams(): the relay for session legs of which either may be TLS.
#pragma once

#include "proxy/asio.hpp"
#include "proxy/relay.hpp"
#include "tunnel/client_stream.hpp"

namespace edgerelay::proxy {

/// Relays both directions between `client` and `upstream` until both ended, with the semantics of
/// async_relay() (half-close, idle timeout, results). Two plain legs use the splice relay on their
/// sockets; a TLS leg needs its bytes decrypted in user space, so those tunnels copy through a
/// buffer per direction (a TLS leg holds ~34 KiB of record buffers anyway).
/// Half-close through TLS: the side that ended gets close_notify then FIN on the other leg.
/// Thread: the streams' executor. Never throws.
net::awaitable<relay_result> relay_streams(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                           relay_pools& pools, relay_options options);

}  // namespace edgerelay::proxy
