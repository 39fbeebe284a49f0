// Message legs: a session leg whose bytes travel in messages rather than on a socket of its own.
//
// The gateway's WebSocket and HTTP-polling doors carry a client's byte stream in WebSocket
// messages or HTTP bodies; the client mode carries its local sessions to the gateway the same way.
// The pipeline (decide, dial, relay, access log, recheck) stays one: a door hands it a door_leg
// (proxy/inbound/door_leg.hpp) for the client side, a dial plan hands it a message_leg for the upstream side, and the relay
// copies between such a leg and a socket leg under the same duplex deadlines as two sockets.
#pragma once

#include <cstddef>
#include <utility>

#include <boost/asio/cancellation_signal.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// A byte stream carried in messages, used from the session's worker thread only. At most one
/// read and one write may be pending at a time, as for a socket; an implementation that must send
/// control messages of its own (pings, breaks) while a write is pending queues them itself.
class message_leg {
 public:
  message_leg() = default;
  message_leg(const message_leg&) = delete;
  message_leg& operator=(const message_leg&) = delete;
  virtual ~message_leg() = default;

  /// The next bytes the peer sent, at least one. net::error::eof once the peer half-closed (its
  /// `fin`) and every byte before it was read; operation_aborted after cancel() or close(), or
  /// when `cancel_slot` is emitted (a phase deadline's slot(); the relay passes none and uses cancel()).
  virtual net::awaitable<std::pair<error_code, std::size_t>> read_some(net::mutable_buffer into,
                                                                       net::cancellation_slot cancel_slot = {}) = 0;

  /// Sends all of `bytes` as the stream's next bytes; the count is how many the peer will get.
  /// `cancel_slot` as for read_some().
  virtual net::awaitable<std::pair<error_code, std::size_t>> write(net::const_buffer bytes,
                                                                   net::cancellation_slot cancel_slot = {}) = 0;

  /// Half-close: the peer reads eof after the bytes written so far; reading goes on. Nothing may be
  /// written afterwards. No write may be pending.
  virtual net::awaitable<error_code> shutdown_send() = 0;

  /// Makes every pending operation complete with operation_aborted; the leg stays usable only for
  /// close(). Never throws.
  virtual void cancel(error_code& ec) noexcept = 0;

  /// Ends the leg for good (the transport's connections or its session are released). Never throws.
  virtual void close() noexcept = 0;
};

}  // namespace edgerelay::proxy
