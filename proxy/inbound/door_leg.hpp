// The client side of a tunnel door's session: a message leg that also answers the request.
#pragma once

#include <cstdint>
#include <string_view>

#include "proxy/core/asio.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/outcome.hpp"
#include "proxy/relay/message_leg.hpp"

namespace edgerelay::proxy {

class backend_hold;

/// A tunnel door's in-band breaks (docs/tunnel-protocol.md, the break control): each goes to
/// the session's backend hold, which sends it the way its server understands (a 602SQL break
/// datagram naming the session). Sessions to other targets ignore them, logged once.
class inband_breaks {
 public:
  /// The session's hold (null: the session has none), or null again when the session ends.
  void attach(backend_hold* hold) noexcept { hold_ = hold; }
  /// One break control from client `peer` on `door` (both for the log).
  void forward(std::string_view door, std::string_view peer);
  std::uint64_t sent() const noexcept { return sent_; }

 private:
  backend_hold* hold_ = nullptr;
  std::uint64_t sent_ = 0;
  bool ignored_logged_ = false;
  bool failure_logged_ = false;
};

/// The client side of a session opened by a tunnel door (WebSocket, polling): it also owes the
/// client the answer to its request, in the door's protocol.
class door_leg : public message_leg {
 public:
  /// Tells the client how its request ended (`result`): success starts the byte stream (WebSocket
  /// 101, the polling session's id); anything else is the door's error response, after which the
  /// session ends. The pipeline calls it once, under `dl`'s handshake phase. False when the
  /// session ends here (a failure, or a client that is gone).
  virtual net::awaitable<bool> answer(outcome result, phase_deadline& dl) = 0;
  /// Where the client's in-band breaks go: the session's backend hold (null: none). The
  /// pipeline calls it once dialled; the hold outlives the leg's use of it (until close()).
  virtual void carry_breaks(backend_hold* hold) noexcept = 0;
};

}  // namespace edgerelay::proxy
