// Plain HTTP on a proxy listener that is not a CONNECT: forward proxying of absolute-form requests,
// the 602SQL HTTP tunnel, and the listener's fallback for requests to the gateway itself.
#pragma once

#include <cstdint>
#include <vector>

#include "proxy/observe/access_log.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/context.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// Takes over a client connection after its first request head was read. `leftover` holds the
/// bytes the client sent after that head (a body, or following requests). Writes the access
/// record's fields it learns; never throws. Returns when the client connection is done.
net::awaitable<void> serve_http(tunnel::client_stream& client, tunnel::request_head first,
                                std::vector<std::uint8_t> leftover, const session_context& ctx, access_record& rec);

}  // namespace edgerelay::proxy
