// The HTTP-polling tunnel's requests and responses (docs/tunnel-protocol.md, "HTTP polling"),
// sans-I/O: what a parsed request head asks for, checked completely before anything is looked up,
// and the complete, bounded responses the door sends.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::tunnel {

/// The most bytes one upstream POST body or one downstream response carries.
inline constexpr std::size_t poll_max_body = 64 * 1024;
/// A session id: 128 random bits as 32 lowercase hex digits.
inline constexpr std::size_t poll_id_bytes = 16;

enum class poll_op : std::uint8_t { open, up, down, close };
/// `Edgerelay-Control` on an upstream POST: after its bytes, the client half-closed, or a 602SQL break.
enum class poll_control : std::uint8_t { none, fin, brk };

struct poll_request {
  poll_op op = poll_op::open;
  std::string id;                             ///< up, down, close: a well-formed session id
  std::uint64_t seq = 0;                      ///< up, down
  poll_control control = poll_control::none;  ///< up only
  std::string target;                         ///< open: the `target` parameter, percent-decoded
  std::uint64_t body_size = 0;                ///< up: Content-Length (at most poll_max_body)
  std::optional<std::string> authorization;   ///< the Authorization value (secret: never log)
};

/// Why a polling request is refused before anything is looked up; `reason` never holds client bytes.
struct poll_refusal {
  unsigned status = 400;
  std::string reason;
};

/// True when the request's path (its query aside) lies under `door_path` + "/poll/": the polling
/// door answers it, whatever else is wrong with it.
bool is_poll_path(const request_head& head, std::string_view door_path);

/// Checks a polling request completely: method and path (`open`, `{id}/up`, `{id}/down`,
/// `{id}/close`; 404 for another path, 405 for a wrong method), the query (`target` once for open,
/// `seq` once as a decimal number for up and down), `Edgerelay-Control` (up only: `fin` or `break`),
/// at most one Authorization, and the body: up needs a Content-Length (411 when chunked, 413 above
/// poll_max_body); the others carry none. Pure; never throws except on allocation.
std::variant<poll_request, poll_refusal> parse_poll_request(const request_head& head, std::string_view door_path);

/// True for 32 lowercase hex digits.
bool is_poll_id(std::string_view id) noexcept;
/// The id's text for 16 random bytes.
std::string poll_id_text(std::span<const std::uint8_t, poll_id_bytes> bytes);

/// Percent-decodes a query value (the polling and WebSocket doors' `target`); nullopt for a bad
/// escape or a control byte in the result.
std::optional<std::string> percent_decode(std::string_view in);

/// One response header beside those poll_response() always writes.
using poll_header = std::pair<std::string_view, std::string_view>;

/// A complete response: status line, `Cache-Control: no-store`, `Content-Length`, a Content-Type
/// (application/octet-stream, or text/plain for errors and the open's id) when there is a body,
/// `Connection: keep-alive` or `close`, the `extra` headers, then the body.
std::string poll_response(unsigned status, std::span<const poll_header> extra, std::string_view body, bool keep_alive,
                          std::string_view content_type = "application/octet-stream");

/// An error response: `reason` as a text/plain line, `Edgerelay-Result: result` when not empty,
/// `Connection: close`.
std::string poll_error_response(unsigned status, std::string_view reason, std::string_view result = {});

}  // namespace edgerelay::tunnel
