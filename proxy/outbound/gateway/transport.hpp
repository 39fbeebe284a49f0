// The client mode's way to its gateway: hops that reach it, and a transport that carries one
// session over what they reached.
//
// A gateway_route opens a fresh connection to the gateway through the configured hops (direct,
// or a corporate proxy's CONNECT; then TLS when the gateway has it). A transport (SOCKS5 inside
// TLS, WebSocket, HTTP polling) turns connections from the route into one session's upstream leg.
// The client's dial plan (auto: WebSocket over CONNECT+TLS, then plain-HTTP WebSocket, then
// polling) picks routes and transports; the wire formats are docs/tunnel-protocol.md.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "proxy/core/asio.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/outcome.hpp"
#include "proxy/relay/message_leg.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy::gateway {

/// How HTTP requests to the gateway are written on a connection from the route.
struct request_style {
  /// True when the connection is to a plain-HTTP proxy that forwards requests (no CONNECT): the
  /// request line takes the absolute form (`GET http://gw.example.com/edgerelay?... HTTP/1.1`) and
  /// `proxy_authorization` goes with every request.
  bool absolute_form = false;
  std::string authority;            ///< the gateway's `host:port`, for Host and the absolute form
  std::string proxy_authorization;  ///< a full header value (`Basic ...`), or empty
};

/// A connection that reaches the gateway, or why not. `failed_hop` names the hop for the log:
/// "proxy" (unreachable or refused), "proxy_auth" (407), "connect" (CONNECT refused),
/// "tls_verify" (with the issuer in `detail`), "gateway".
struct route_connection {
  outcome result = outcome::general_failure;
  std::optional<tunnel::client_stream> stream;
  request_style style;
  std::string failed_hop;
  std::string detail;
};

/// Opens connections to the gateway; immutable, shared by the sessions of a worker.
class gateway_route {
 public:
  virtual ~gateway_route() = default;
  /// One new connection, under `dl`'s current phase. Never throws.
  virtual net::awaitable<route_connection> connect(phase_deadline& dl) const = 0;
};

/// What a session asks the gateway for: a `host:port` target, a backend (`backend:NAME`, which the
/// gateway maps to the backend's service), or a UDP association.
struct tunnel_request {
  std::string target;         ///< "host:port", "[v6]:port" or "backend:NAME"; empty for udp
  bool udp = false;           ///< a UDP association: each message is one RFC 1928 UDP datagram
  std::string authorization;  ///< a full `Authorization` header value for the gateway, or empty (mTLS)
};

/// An opened session: its upstream leg, or the gateway's refusal mapped to an outcome.
struct opened_tunnel {
  outcome result = outcome::general_failure;
  std::unique_ptr<message_leg> leg;  ///< set on success
  std::string failed_hop;            ///< as route_connection's, or "upgrade" / "polling" / "socks5"
  std::string detail;
};

/// A session leg to the gateway that can carry 602SQL breaks in-band (docs/tunnel-protocol.md,
/// "Control messages"): the gateway sends the break from the session's egress address.
class gateway_leg : public message_leg {
 public:
  /// Queues a break for this session; sent ahead of queued bytes, never interleaved inside a
  /// message. Never throws; does nothing once the leg is closed.
  virtual void send_break() noexcept = 0;
};

/// One transport (WebSocket, polling, SOCKS5 inside TLS).
class transport {
 public:
  virtual ~transport() = default;
  /// Opens a session to `what` over connections from `route`, under `dl`'s current phase (the
  /// connect timeout). The leg it returns is a gateway_leg. Never throws.
  virtual net::awaitable<opened_tunnel> open(const gateway_route& route, const tunnel_request& what,
                                             phase_deadline& dl) const = 0;
};

}  // namespace edgerelay::proxy::gateway
