// HTTP CONNECT client side, sans-I/O: the request a gateway sends an upstream HTTP proxy (Squid,
// another edgerelay) to open a tunnel, and the reading of the proxy's response head.
//
// The driver writes connect_request(), then loops: read exactly wanted() bytes -> feed(). The head
// ends with CRLFCRLF, and wanted() never asks past it, so no tunnel byte is taken from the stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace edgerelay::tunnel {

/// "CONNECT host:port HTTP/1.1", a Host field and, with a user, "Proxy-Authorization: Basic ...".
/// `authority` is "host:port" or "[v6]:port". The result holds the password: never log it.
/// Empty when the authority or the credentials hold a CR, LF or NUL (they would split the head),
/// or the user holds a ':' (Basic cannot carry it).
std::vector<std::uint8_t> connect_request(std::string_view authority, std::string_view user, std::string_view password);

/// What the proxy answered.
struct connect_response {
  unsigned status = 0;
  std::string reason;  ///< as sent (the proxy's text, not ours: escape it before logging)
  /// Set for a 407: the Proxy-Authenticate challenge, if any.
  std::optional<std::string> proxy_authenticate;
};

namespace connect_step {
struct need_more {};
/// A 2xx without a body: the tunnel is up.
struct established {
  connect_response response;
};
/// Any other status (a 407 among them): no tunnel.
struct refused {
  connect_response response;
};
/// Not an HTTP/1.x response head, a head over the limit, or a 2xx that declares a body.
struct malformed {
  std::string_view what;  ///< static text for logs
};
}  // namespace connect_step

using connect_result =
    std::variant<connect_step::need_more, connect_step::established, connect_step::refused, connect_step::malformed>;

/// Reads one response head to a CONNECT.
class connect_response_reader {
 public:
  explicit connect_response_reader(std::size_t header_limit = 16 * 1024);
  /// Bytes read since the last call, in any split.
  connect_result feed(std::span<const std::uint8_t> in);
  /// The fewest bytes that can end the head from here (1 to 4): reading exactly this many never
  /// takes a byte behind it. 0 once decided.
  std::size_t wanted() const noexcept;
  /// Bytes fed behind the head, once established.
  std::span<const std::uint8_t> leftover() const noexcept;

 private:
  std::size_t header_limit_;
  std::vector<std::uint8_t> buf_;
  std::size_t scan_ = 0;
  std::size_t head_ = 0;  ///< length of the head once decided
  bool decided_ = false;
  bool established_ = false;
};

}  // namespace edgerelay::tunnel
