// The client mode's WebSocket transport: one session per WebSocket to the gateway's door
// (docs/tunnel-protocol.md, "WebSocket"), over a connection from a gateway_route.
#pragma once

#include <chrono>
#include <string>

#include "proxy/outbound/gateway/transport.hpp"

namespace edgerelay::proxy::gateway {

struct websocket_options {
  std::string path = "/edgerelay";  ///< the gateway's websocket_path
  /// A ping goes out this often; a pong (or any message) must come back within ping_timeout, or
  /// the leg fails and its session ends at once.
  std::chrono::milliseconds ping_interval{25000};
  std::chrono::milliseconds ping_timeout{25000};
  /// Bounds the close handshake at the end of a session.
  std::chrono::milliseconds close_timeout{5000};
};

/// The request-target of the upgrade for `what`: `{path}?target=...` (or `?udp=1`), percent-encoded,
/// in the absolute form `http://{authority}{path}?...` when `style` asks for it.
std::string upgrade_target(const websocket_options& options, const tunnel_request& what, const request_style& style);

/// The outcome a refused upgrade's status stands for (401 bad_credentials, 403 denied, 502
/// host_unreachable, 504 connect_timeout, 400 malformed; else general_failure).
outcome outcome_of_upgrade_status(unsigned status) noexcept;

class websocket_transport final : public transport {
 public:
  explicit websocket_transport(websocket_options options = {});
  /// Connects through `route`, upgrades with `what`'s target and credentials, and returns a
  /// gateway_leg; a refusal maps to an outcome with failed_hop "upgrade" and the status in detail.
  net::awaitable<opened_tunnel> open(const gateway_route& route, const tunnel_request& what,
                                     phase_deadline& dl) const override;

 private:
  websocket_options options_;
};

}  // namespace edgerelay::proxy::gateway
