// SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): one association per control connection.
//
// The relay address in the reply is a UDP socket bound to the IP the client reached the gateway on.
// Only the associating client (its TCP address, and the port it named or else the first one it sent
// from) may send there; each datagram's target is decided by the rules as a CONNECT's would be (the
// name first, then each resolved address) and its payload sent on from a second socket. Datagrams
// that come back from a target this association sent to are wrapped in the header naming their
// source and sent to the client. Everything else (FRAG != 0, malformed, denied, strangers) is
// dropped and counted. The association ends when its TCP connection closes or goes idle.
#pragma once

#include "proxy/observe/access_log.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/core/context.hpp"
#include "socks/server.hpp"

namespace edgerelay::proxy {

/// Serves one association on `client`, whose request `socks` has decoded (it is in the connecting
/// state and sends the reply). `client_said` is the request's DST: where the client will send from
/// (its port is used when non-zero; the address is always the TCP peer's). `dl` bounds the reply
/// and each name resolution; the caller settles it. Fills `rec` (protocol "socks5-udp", result,
/// payload bytes both ways, the deciding rule of the first datagram). Never throws.
net::awaitable<void> serve_udp_associate(tunnel::client_stream& client, socks::socks_server& socks,
                                         const target& client_said, const session_context& ctx, access_record& rec,
                                         phase_deadline& dl);

}  // namespace edgerelay::proxy
