// The WebSocket door (docs/tunnel-protocol.md, "WebSocket"): on a listener with protocol
// `websocket`, the HTTP door hands it a GET with `Upgrade: websocket`. It checks the upgrade, the
// target and the credentials, and returns a request whose client leg answers with 101 after the
// dial and then carries the byte stream in binary messages, with `fin` and `break` as text
// control messages.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proxy/core/context.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/inbound/door.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/observe/outcome.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// True when `head` asks to upgrade to WebSocket (an `Upgrade` list naming `websocket`).
bool is_websocket_upgrade(const tunnel::request_head& head);

/// What a well-formed upgrade asks for (nothing is decided or looked up yet).
struct websocket_ask {
  std::string target;                        ///< the `target` parameter, percent-decoded; empty for udp
  bool udp = false;                          ///< `udp=1`
  std::string subprotocol;                   ///< to echo: edgerelay.v1, or empty when none was offered
  std::optional<std::string> authorization;  ///< the Authorization value (secret: never log)
};
/// Why an upgrade is refused before anything is dialled.
struct websocket_refusal {
  unsigned status = 400;
  outcome why = outcome::malformed;
  std::string reason;  ///< the body's one line; never contains client bytes
};

/// Checks an upgrade request against the door's `path`: GET, HTTP/1.1, `Connection: upgrade`,
/// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`, the path (404 when another), the query
/// (`target` once, or `udp=1`), the offered subprotocols (none, or a list with edgerelay.v1).
/// Pure; never throws on any input except allocation.
std::variant<websocket_ask, websocket_refusal> check_websocket_upgrade(const tunnel::request_head& head,
                                                                       std::string_view path);

/// The status the door answers an outcome with (docs/tunnel-protocol.md): 101 success, 400, 401,
/// 403, 501, 502, 504.
unsigned websocket_status(outcome o) noexcept;

/// A complete refusal: status, `Cache-Control: no-store`, `Edgerelay-Result: <why>`, a
/// Content-Length'd text/plain body `reason`, `Connection: close`; 401 adds
/// `WWW-Authenticate: Basic realm="edgerelay"`, 426 adds `Upgrade: websocket`.
std::vector<std::uint8_t> websocket_error_reply(unsigned status, outcome why, std::string_view reason);

/// The door: checks `head` (already parsed by the HTTP door; `leftover` is what came behind it),
/// the credentials (Basic with the listener's users when `auth: password`, unless a client
/// certificate named the user) and the target. A refusal is a door_closed with its reply; else a
/// request whose client_leg is the WebSocket.
net::awaitable<door_result> open_websocket(const session_context& ctx, tunnel::client_stream& client,
                                           tunnel::request_head head, std::span<const std::uint8_t> leftover,
                                           access_record& rec, phase_deadline& dl);

}  // namespace edgerelay::proxy
