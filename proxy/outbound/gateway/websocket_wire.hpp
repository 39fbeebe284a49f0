// The WebSocket tunnel's wire (docs/tunnel-protocol.md, "WebSocket"), shared by the gateway's
// door and the client's transport: the control messages, the limits, and a message channel over a
// client_stream that turns binary messages into stream bytes and text messages into control ops.
//
// Beast's websocket::stream is instantiated once, in websocket_wire.cpp, over
// tunnel::client_stream& (plain or TLS), so neither door nor transport compiles it again.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/cancellation_signal.hpp>

#include "proxy/core/asio.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy::gateway {

/// The subprotocol a client offers and the gateway echoes.
inline constexpr std::string_view websocket_subprotocol = "edgerelay.v1";
/// The gateway sends stream bytes in binary messages of at most this size.
inline constexpr std::size_t websocket_send_chunk = 16 * 1024;
/// A peer's message may be this large; a larger one closes the session with 1009.
inline constexpr std::size_t websocket_max_message = 1024 * 1024;
/// A control message (a text message) longer than this closes the session with 1008.
inline constexpr std::size_t websocket_max_control = 256;

/// Close codes (RFC 6455 section 7.4.1) the tunnel uses.
enum class close_code : std::uint16_t {
  normal = 1000,            ///< both sides sent fin
  going_away = 1001,        ///< the gateway closes the session (shutdown, reload recheck)
  policy_violation = 1008,  ///< an unknown or malformed control message
  internal_error = 1011,    ///< the session failed (upstream reset, timeout)
};

/// What a text message asks for.
enum class control_op : std::uint8_t { fin, break_query, unknown, malformed };

/// Parses a control message: a JSON object with a string member "op" ({"op":"fin"}); other
/// members, if strings, numbers, booleans or null, are ignored so later versions can add some.
/// Anything that is not such an object is malformed; an op other than fin and break is unknown.
control_op parse_control(std::string_view text) noexcept;

/// The text message for `op` (fin or break_query).
std::string_view control_text(control_op op) noexcept;

/// One thing read from a channel: stream bytes (n > 0), a control op, or the end (ec; eof for a
/// close frame from the peer).
struct channel_read {
  error_code ec;
  std::size_t n = 0;
  std::optional<control_op> control;
};

/// The answer a client got to its upgrade.
struct handshake_answer {
  error_code ec;
  unsigned status = 0;      ///< the HTTP status; 101 on success, 0 when none was read
  std::string body;         ///< a refusal's body (the gateway's short reason)
  std::string result;       ///< its Edgerelay-Result header
  std::string subprotocol;  ///< the Sec-WebSocket-Protocol the server chose, if any
};

/// A WebSocket over a client_stream, used from the stream's thread only: one read, one write
/// (bytes or control) and one ping may be pending at once. `cancel_slot` arguments abort the
/// operation by cancelling the socket (a phase deadline's slot). The stream must outlive it.
class ws_channel {
 public:
  ws_channel(tunnel::client_stream& stream, std::chrono::milliseconds close_timeout);
  ~ws_channel();
  ws_channel(const ws_channel&) = delete;
  ws_channel& operator=(const ws_channel&) = delete;

  /// Server: answers `head` (a validated upgrade request) with 101, echoing `subprotocol` when not empty.
  net::awaitable<error_code> accept(const tunnel::request_head& head, std::string subprotocol,
                                    net::cancellation_slot cancel_slot);

  /// Client: sends the upgrade for `target` (origin or absolute form) with `headers`, reads the answer.
  net::awaitable<handshake_answer> handshake(std::string host, std::string target,
                                             std::vector<std::pair<std::string, std::string>> headers,
                                             net::cancellation_slot cancel_slot);

  /// The next bytes of a binary message, or a complete control message. Pings are answered inside.
  net::awaitable<channel_read> read(net::mutable_buffer into, net::cancellation_slot cancel_slot = {});

  /// Sends `bytes` as binary messages of at most websocket_send_chunk.
  net::awaitable<std::pair<error_code, std::size_t>> write_bytes(net::const_buffer bytes,
                                                                 net::cancellation_slot cancel_slot = {});
  /// Sends one control message.
  net::awaitable<error_code> write_control(control_op op, net::cancellation_slot cancel_slot = {});
  /// Sends a ping; its pong is reported to the pong callback during reads.
  net::awaitable<error_code> ping();
  /// The close handshake with `code`, then the connection's teardown, bounded by the close timeout.
  /// No read may be pending.
  net::awaitable<error_code> close(close_code code, std::string_view reason);

  /// Called (inside read()) for every pong the peer sends.
  void on_pong(std::function<void()> callback);

  /// True after the handshake and until a close frame was sent or received, or the connection failed.
  bool is_open() const noexcept;
  /// True while a write (bytes or control) is under way: a frame may be half on the wire.
  bool writing() const noexcept { return writing_; }
  /// Cancels every pending operation (the socket's). Never throws.
  void cancel(error_code& ec) noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  tunnel::client_stream& stream_;
  bool writing_ = false;
};

/// The unmasked close frame a server sends with `code`, for the last word of a session whose
/// channel cannot run a close handshake any more (it is written without waiting, best effort).
std::vector<std::uint8_t> server_close_frame(close_code code);

}  // namespace edgerelay::proxy::gateway
