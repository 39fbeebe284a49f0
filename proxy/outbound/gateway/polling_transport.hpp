// The client mode's HTTP-polling transport (docs/tunnel-protocol.md, "HTTP polling"): one session
// opened by one request, its upstream bytes in POST bodies and its downstream bytes in long polls,
// over keep-alive connections from a gateway_route (at most one for up and one for down at a time).
#pragma once

#include <chrono>
#include <string>

#include "proxy/outbound/gateway/transport.hpp"

namespace edgerelay::proxy::gateway {

struct polling_options {
  std::string path = "/edgerelay";  ///< the gateway's websocket_path
  /// One up request's answer. The gateway holds a request its upstream cannot take yet up to 20 s
  /// before answering 503, so this is above that hold.
  std::chrono::milliseconds up_timeout{35000};
  /// One long poll: the gateway holds it up to 20 s, then the way back through proxies.
  std::chrono::milliseconds down_timeout{35000};
  /// A new connection to the gateway in the middle of a session (the first one's answer was lost,
  /// or the proxy closed a kept connection).
  std::chrono::milliseconds connect_timeout{10000};
  /// Answers lost in a row for the same seq before the session is given up.
  unsigned max_lost = 4;
  /// Bounds the close request sent when a session ends before both fins.
  std::chrono::milliseconds close_timeout{3000};
};

/// The outcome a refused open's status stands for, and the hop it names: a refusal the gateway
/// itself wrote (it carries Edgerelay-Result) of the target (400, 403, 502, 504) names no hop, since
/// another transport would get the same answer; 401 is "gateway_auth"; a 407 "proxy_auth"; any
/// other answer (a proxy's 403, a 404 from a gateway without polling) is "polling".
struct open_refusal {
  outcome result = outcome::general_failure;
  std::string failed_hop;
};
open_refusal refusal_of_open(unsigned status, bool from_gateway) noexcept;

class polling_transport final : public transport {
 public:
  explicit polling_transport(polling_options options = {});
  /// Opens a session through `route` and returns a gateway_leg that opens its up and down
  /// connections through `route` as it needs them: the route must outlive the leg (the dial plan
  /// owns both and outlives every session).
  net::awaitable<opened_tunnel> open(const gateway_route& route, const tunnel_request& what,
                                     phase_deadline& dl) const override;

 private:
  polling_options options_;
};

}  // namespace edgerelay::proxy::gateway
