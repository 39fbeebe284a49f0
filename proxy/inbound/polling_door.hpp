// The HTTP-polling door (docs/tunnel-protocol.md, "HTTP polling"): on a listener with protocol
// `polling`, the HTTP door hands it every request under `websocket_path` + "/poll/".
//
// The door serves the requests of a connection one after another (keep-alive): up, down and
// close requests feed sessions that already exist, wherever their leg lives; an open request
// becomes the pipeline's request, whose client leg answers with the session id after the dial.
// Open may come behind other requests on a kept connection, as a pooling proxy (Squid) sends it,
// which is why the door, and not serve_http(), runs the loop.
#pragma once

#include <cstdint>
#include <span>

#include "proxy/core/context.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/inbound/door.hpp"
#include "proxy/observe/access_log.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// True when the listener speaks polling and `head` is for the polling door.
bool is_polling_request(const session_context& ctx, const tunnel::request_head& head);

/// Serves the connection's polling requests from `head` on (`leftover` came behind it). Returns
/// the request of an open (its client leg is the session's), or the connection's end: a refusal
/// to write, or nothing when the requests were served (the record is then not logged: each
/// session writes its own line when it ends).
net::awaitable<door_result> open_polling(const session_context& ctx, tunnel::client_stream& client,
                                         tunnel::request_head head, std::span<const std::uint8_t> leftover,
                                         access_record& rec, phase_deadline& dl);

}  // namespace edgerelay::proxy
