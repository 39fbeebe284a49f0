// Plain HTTP on a proxy listener, request by request: forward proxying of absolute-form requests
// (keep-alive, streamed bodies) and the listener's fallback for requests to the gateway itself.
// Also the dial the 602SQL tunnel shares with it.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/core/context.hpp"
#include "proxy/outbound/dial_plan.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::proxy {

/// Serves `first` and every following request of a keep-alive client connection: absolute-form
/// requests are forwarded (proxy auth and the rules for each request, also on a reused upstream;
/// a request after the first under the worker's current snapshot; hop-by-hop fields dropped,
/// Via added, bodies streamed in both directions at once), origin-form and `*` requests go to the
/// listener's fallback (404, or an opaque relay to the named backend). `carry` holds the client
/// bytes read behind `first`'s head. One access line per request: every request but the last is
/// written here when the next one starts; the last stays in `rec` for the session to write.
/// Never throws; returns when the client connection is done.
net::awaitable<void> serve_requests(tunnel::client_stream& client, tunnel::request_head first,
                                    std::vector<std::uint8_t> carry, const session_context& ctx, access_record& rec);

namespace http_detail {

/// Dials `where` for `who` with the session's dial plan within `limit` (one phase of `dl`), and
/// records the dial in `rec` (and the session's identity for reload rechecks). No stream when any
/// step failed or the limit passed: rec.result says why. Never throws.
net::awaitable<dialled_upstream> open_upstream(const dial_identity& who, const target& where,
                                               const session_context& ctx, access_record& rec, phase_deadline& dl,
                                               std::chrono::milliseconds limit);

}  // namespace http_detail
}  // namespace edgerelay::proxy
