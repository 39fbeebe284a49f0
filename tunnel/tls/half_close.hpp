// How a TLS client_stream half-closes when a proxy stands between it and its peer.
#pragma once

#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::tunnel {

/// After this, shutdown_send() on a TLS `stream` sends close_notify only, without the TCP FIN:
/// a proxy's CONNECT tunnel (Squid's) ends both directions at the first FIN it sees, so the TLS
/// half-close must be the only end the proxy relays while the peer still answers. No effect on a
/// plain stream or before TLS starts (call it after connect_tls()).
void half_close_without_fin(client_stream& stream) noexcept;

}  // namespace edgerelay::tunnel
