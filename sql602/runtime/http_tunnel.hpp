// The 602SQL HTTP tunnel on a proxy listener (docs/602sql.md): POSTs to native
// frames on the backend's PORTBASE+1 and native messages back as `200 OK` responses, full duplex.
#pragma once

#include <cstdint>
#include <vector>

#include "config/model.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/context.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// Serves a client connection recognised as a 602SQL tunnel (sql602::detect_tunnel) until either
/// side closes. `input` is the client's byte stream from its first request on (what the gateway
/// already read, head included); the translator replays it. The backend is dialled under the
/// rules (the policy sees the backend's name), its DT_CONNRESULT is consumed (6.2), then both
/// directions run at once: no pairing of requests and responses, unsolicited messages included.
/// A refused or unreachable backend answers the first POST with the stock server's error bytes.
/// Never throws.
net::awaitable<void> serve_sql602_tunnel(tunnel::client_stream& client, const config::backend_config& backend,
                                         std::vector<std::uint8_t> input, const session_context& ctx,
                                         access_record& rec);

}  // namespace edgerelay::proxy
