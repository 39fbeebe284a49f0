// The client side of a tunnel door's session: a message leg that also answers the request.
#pragma once

#include "proxy/core/asio.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/outcome.hpp"
#include "proxy/relay/message_leg.hpp"

namespace edgerelay::proxy {

/// The client side of a session opened by a tunnel door (WebSocket, polling): it also owes the
/// client the answer to its request, in the door's protocol.
class door_leg : public message_leg {
 public:
  /// Tells the client how its request ended (`result`): success starts the byte stream (WebSocket
  /// 101, the polling session's id); anything else is the door's error response, after which the
  /// session ends. The pipeline calls it once, under `dl`'s handshake phase. False when the
  /// session ends here (a failure, or a client that is gone).
  virtual net::awaitable<bool> answer(outcome result, phase_deadline& dl) = 0;
};

}  // namespace edgerelay::proxy
