// A SOCKS5 BIND session up to its relay: the dial plan that accepts instead of connecting, with
// the intermediate reply between the listen and the accept (RFC 1928 section 4).
#pragma once

#include "proxy/core/context.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/inbound/door.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/outbound/connector.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// Serves the BIND `door` returned for `expected`: refused (0x02) unless the listener has
/// `socks5_bind`; decided as a dial to `expected` under connect_timeout; the first reply (where
/// the gateway listens); the wait for the expected peer under limits.bind_timeout; the second
/// reply (the peer's address). True when `upstream` is the connected peer and the client has both
/// replies: the caller delivers the leftover and relays. `identity` is set once the rules allowed
/// the peer, so a reload's recheck covers the wait and the relay. A refusal or a timeout is
/// replied and lingered on; every outcome is recorded in `rec`. Never throws but for allocation.
net::awaitable<bool> serve_bind(tunnel::client_stream& client, tunnel::client_stream& upstream, front_door& door,
                                const target& expected, const session_context& ctx, access_record& rec,
                                session_identity& identity, phase_deadline& dl);

}  // namespace edgerelay::proxy
