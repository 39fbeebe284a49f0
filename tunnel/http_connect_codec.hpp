// HTTP request-head reader (CONNECT / absolute-form / origin-form) and the proxy's reply bytes, sans-I/O.
//
// The driver (proxy/session/session.cpp) loops: read some bytes -> reader.feed(bytes) -> act on the result:
//   need_more     -> read more bytes and feed() them (only the new bytes; the reader keeps the rest)
//   http_error    -> write `reply` in one write, then close (nothing else may follow)
//   parsed<head>  -> the head is complete; reader.leftover() holds the bytes the client sent behind
//                    the header block (optimistic tunnel data or a request body), never lost.
// The codec includes only Beast's parser headers (docs/architecture.md) and never throws on
// untrusted input (R2): Beast reports errors through error_code, and every path maps to a status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace edgerelay::tunnel {

/// Upper bound of a request or response head (start line + fields + the empty line). Above it the
/// reader answers 431 (docs/config.md).
inline constexpr std::size_t max_header_bytes = 64 * 1024;

/// The result of a codec that needs more input before it can decide.
struct need_more {};

/// A terminal error: `reply` is the complete HTTP response to write (one write) before closing.
struct http_error {
  unsigned status = 400;
  std::string_view reason;          ///< static text for logs; never contains client data
  std::vector<std::uint8_t> reply;  ///< exact bytes, ends with Connection: close
};

/// A complete value and the number of input bytes it took (counted from the first byte ever fed).
template <class T>
struct parsed {
  T value;
  std::size_t consumed = 0;
};

/// One header field exactly as received (Beast trims the value's surrounding whitespace).
struct header_field {
  std::string name;
  std::string value;
};

/// RFC 9112 section 3.2 request-target forms.
enum class target_form : std::uint8_t {
  origin,     ///< "/path?q": a request to the gateway itself (fallback) or a 602SQL tunnel POST
  absolute,   ///< "http://host[:port]/path": plain forward proxying
  authority,  ///< "host:port": CONNECT only
  asterisk,   ///< "*": OPTIONS to the gateway itself
};

/// A destination named by the request-target: CONNECT's authority-form or an absolute URI's authority.
struct authority_target {
  /// A name as sent (case kept); IPv4 as a dotted quad, whatever inet_aton form was sent
  /// ("2130706433" -> "127.0.0.1"); IPv6 without its brackets.
  std::string host;
  std::uint16_t port = 0;  ///< 1-65535; absolute-form without a port: 80
  bool is_ipv6 = false;
  friend bool operator==(const authority_target&, const authority_target&) = default;
};

/// "host:port", with brackets around an IPv6 host (for Host headers and logs).
std::string to_string(const authority_target&);

/// A parsed request head. Everything is copied out of the reader, so it outlives the reader.
struct request_head {
  std::string method;     ///< case-sensitive token as sent ("CONNECT", "GET", ...)
  std::string target;     ///< request-target as sent
  unsigned version = 11;  ///< 10 = HTTP/1.0, 11 = HTTP/1.1
  target_form form = target_form::origin;
  authority_target authority;  ///< valid for form authority and absolute
  /// absolute-form: the origin-form to send upstream ("/" when the URI has no path; query kept);
  /// origin-form: the target; authority/asterisk: empty.
  std::string path;
  std::vector<header_field> fields;  ///< every field, in order

  // The fields the gateway acts on. Repeated list fields (Connection, Proxy-Connection, Upgrade,
  // Transfer-Encoding) are joined with ", "; a repeated Host or Proxy-Authorization is a 400.
  std::optional<std::string> host;
  std::optional<std::string> proxy_authorization;  ///< secret: never log
  std::optional<std::string> connection;
  std::optional<std::string> proxy_connection;
  std::optional<std::string> upgrade;
  std::optional<std::string> transfer_encoding;
  std::optional<std::uint64_t> content_length;  ///< parsed and checked by Beast
  bool chunked = false;                         ///< Transfer-Encoding ends with "chunked"
  bool keep_alive = false;                      ///< HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive

  bool is_connect() const { return method == "CONNECT"; }
  /// First field named `name` (ASCII case-insensitive), or nullopt.
  std::optional<std::string_view> field(std::string_view name) const;
};

using head_result = std::variant<need_more, http_error, parsed<request_head>>;

struct request_reader_options {
  std::size_t header_limit = max_header_bytes;  ///< above it: 431
  /// Classify the request-target (authority/absolute/origin) and reject what the gateway cannot
  /// serve. Off for the 602SQL tunnel, whose server does not look at the target (docs/602sql.md).
  bool classify_target = true;
};

/// Reads one request head from arbitrary chunks.
///
/// Classification (classify_target on):
///  * CONNECT: target must be authority-form "host:port" (port required, 1-65535, IPv6 in
///    brackets, else a host names::classify_host accepts as a name or IPv4); no request content
///    (Content-Length other than 0, Transfer-Encoding): else 400.
///  * "http://host[:port][/path][?query]" (scheme case-insensitive, no userinfo, no fragment):
///    absolute, default port 80.
///  * Any other scheme, https:// included: 501 Not Implemented. The request is well formed but the
///    gateway does not originate TLS; clients reach https origins with CONNECT.
///  * "/..." origin, "*" asterisk (OPTIONS only); anything else, or authority-form with another
///    method: 400.
///  * Transfer-Encoding whose last coding is not chunked: 400 (RFC 9112 section 6.3).
///  * Header section above header_limit: 431. Syntax errors (Beast): 400.
/// Beast parses the head only once its terminating CRLFCRLF is buffered (or the limit is reached),
/// so the outcome is the same however the bytes were chunked.
/// Host is not required (a 602SQL tunnel POST has none); whether a method is acceptable on a
/// listener is the caller's decision (405 for non-CONNECT on a CONNECT-only listener).
///
/// Thread safety: one reader per connection, used from one thread.
class request_head_reader {
 public:
  explicit request_head_reader(request_reader_options options = {});
  ~request_head_reader();
  request_head_reader(request_head_reader&&) noexcept;
  request_head_reader& operator=(request_head_reader&&) noexcept;

  /// Append `in` (copied; may be empty) and try to complete the head. After a parsed or http_error
  /// result the reader is finished and further calls return http_error 400.
  head_result feed(std::span<const std::uint8_t> in);

  /// Bytes fed after the header block; valid once feed() returned parsed.
  std::span<const std::uint8_t> leftover() const;

  /// Every byte fed so far (head and leftover), so a caller that hands the connection to another
  /// codec (the 602SQL tunnel) can replay the whole input.
  std::span<const std::uint8_t> buffered() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Parse CONNECT's authority-form "host:port" (also used for an absolute URI's authority with
/// port_required = false, where a missing or empty port gives 80). A bracket-less host must be an
/// RFC 1123 name or an inet_aton IPv4 form (names::classify_host), else nullopt (the caller's
/// 400): "bad%name", "a\x01b", a 64-byte label, "256.1.1.1" and "0x" never reach policy.
std::optional<authority_target> parse_authority(std::string_view text, bool port_required = true);

/// "HTTP/1.1 200 Connection established\r\n\r\n": no Content-Length or Transfer-Encoding (RFC 9110
/// section 9.3.6: a 2xx to CONNECT has no content, the tunnel starts after the empty line).
std::vector<std::uint8_t> connect_established_reply();

/// The reason phrase the gateway uses for `status` ("Bad Request"); "Error" for unknown codes.
std::string_view reason_phrase(unsigned status);

/// A complete error response with `Content-Type: text/plain`, Content-Length, a one-line body
/// ("<status> <reason>\n") and `Connection: close`. 407 adds
/// `Proxy-Authenticate: Basic realm="edgerelay"`; 405 adds `Allow: CONNECT` (it is only used for a
/// non-CONNECT method on a CONNECT-only listener). Statuses: 400 403 404 405 407 431 500 501 502 503
/// 504; any other value gives 500.
std::vector<std::uint8_t> error_reply(unsigned status);

}  // namespace edgerelay::tunnel
