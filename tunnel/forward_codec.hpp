// Plain forward proxying (absolute-form requests, http_proxy=): head rewriting, response-head reader, body framing.
//
// The driver of one keep-alive client connection loops:
//   1. request_head_reader -> head (form absolute) -> policy -> connect upstream
//   2. write build_forward_request(head, ...) upstream; stream the request body through a
//      body_tracker(request_body_framing(head)) fed with reader.leftover() and then later reads
//   3. response_head_reader(head.method) fed with upstream bytes -> response_head
//   4. write build_forward_response(resp, ...) to the client; stream the body through a
//      body_tracker(resp.framing); the bytes after `consumed` belong to the next message
//   5. keep-alive when both heads allow it and the framing is not until_close; else close
// Only Beast's parser headers are used (docs/architecture.md); nothing throws on untrusted input.
//
// Versions: each head is forwarded with the HTTP version it was received with (an HTTP/1.0 client's
// request goes upstream as HTTP/1.0, so a compliant server never answers it chunked and the
// gateway never has to re-frame a body). Via names that received version (RFC 9110 section 7.6.3),
// "Via: 1.1 edgerelay" for HTTP/1.1.
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

#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::tunnel {

/// How a message body ends (RFC 9112 section 6.3).
enum class body_kind : std::uint8_t {
  none,            ///< no body: HEAD responses, 1xx, 204, 304, requests without CL/TE
  content_length,  ///< exactly `length` bytes
  chunked,         ///< chunked transfer coding, through the last chunk and trailer section
  until_close,     ///< response without length: ends when the upstream closes
};

struct body_framing {
  body_kind kind = body_kind::none;
  std::uint64_t length = 0;  ///< content_length only
  friend bool operator==(const body_framing&, const body_framing&) = default;
};

/// A request's body framing: chunked, Content-Length, else none (a request is never until-close).
body_framing request_body_framing(const request_head& head);

/// True for the fields a proxy never forwards (RFC 9110 section 7.6.1): Connection, Keep-Alive,
/// Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Transfer-Encoding,
/// Upgrade; plus every field named in `connection_tokens` (the Connection and Proxy-Connection
/// values, comma-separated). Host is not hop-by-hop; the request builder rewrites it separately.
bool is_hop_by_hop(std::string_view name, std::string_view connection_tokens);

/// The upstream request head in origin-form: "<method> <path> HTTP/1.x", then `Host` from the
/// absolute URI (RFC 9112 section 3.2.2: a proxy generates Host from the target and never forwards
/// the received one; ":80" omitted), the end-to-end fields in received order, Transfer-Encoding
/// only when the body is chunked (the chunked bytes are streamed unchanged), `Via: 1.x edgerelay`,
/// and `Connection: close` when !upstream_keep_alive (HTTP/1.0: `Connection: keep-alive` when
/// upstream_keep_alive). For a head that is not absolute-form, the target and the received Host
/// are used as they are.
std::vector<std::uint8_t> build_forward_request(const request_head& head, bool upstream_keep_alive);

/// A parsed response head, copied out of the reader.
struct response_head {
  unsigned status = 0;
  std::string reason;
  unsigned version = 11;
  std::vector<header_field> fields;              ///< every field, in order
  std::optional<std::string> connection;         ///< repeated fields joined with ", "
  std::optional<std::string> transfer_encoding;  ///< repeated fields joined with ", "
  std::optional<std::uint64_t> content_length;
  body_framing framing;
  /// The upstream connection may carry another request after this response: the server did not
  /// ask to close and the body does not end at close.
  bool keep_alive = false;
  /// 1xx other than 101: an interim response; the final one follows on the same connection.
  bool interim() const { return status >= 100 && status < 200 && status != 101; }
  std::optional<std::string_view> field(std::string_view name) const;
};

using response_result = std::variant<need_more, http_error, parsed<response_head>>;

/// Reads one response head from arbitrary chunks (Beast response_parser<empty_body>, header only).
/// Errors (malformed, head above header_limit) come back as http_error with the 502 reply for the
/// client. Thread safety: one reader per response, used from one thread.
class response_head_reader {
 public:
  /// `request_method`: the method of the request this answers ("HEAD" responses have no body).
  explicit response_head_reader(std::string_view request_method, std::size_t header_limit = max_header_bytes);
  ~response_head_reader();
  response_head_reader(response_head_reader&&) noexcept;
  response_head_reader& operator=(response_head_reader&&) noexcept;

  /// Append `in` (copied; may be empty) and try to complete the head. After a parsed or
  /// http_error result the reader is finished and further calls return http_error 502.
  response_result feed(std::span<const std::uint8_t> in);

  /// Bytes fed after the header block (the start of the body); valid once feed() returned parsed.
  std::span<const std::uint8_t> leftover() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The response head to send to the client: "HTTP/1.x <status> <reason>", the end-to-end fields in
/// received order (Transfer-Encoding kept when the body is chunked, as its bytes pass unchanged),
/// `Via: 1.x edgerelay`, then `Connection: <connection>` unless `connection` is empty (the caller
/// decides the client connection's fate: "close" after an until_close body, for instance).
std::vector<std::uint8_t> build_forward_response(const response_head& head, std::string_view connection);

enum class body_state : std::uint8_t { more, done, error };

struct body_step {
  body_state state = body_state::more;
  std::size_t consumed = 0;  ///< bytes of the input that belong to this body: pass them through
  std::string_view error;    ///< static text, when state == error
};

/// Follows a body through the proxy without buffering it: feed() each chunk as it is relayed, pass
/// on the `consumed` first bytes, and when state is done the rest of the chunk starts the next
/// message (pipelined request, or the next response). Chunked syntax is checked strictly (CRLF line
/// ends, hex sizes up to 2^64-1, chunk extensions up to 4 KiB per line, trailer section up to
/// 64 KiB) because a lax count here would let a client smuggle a request past the gateway.
class body_tracker {
 public:
  explicit body_tracker(body_framing framing);

  /// Scan `in` (not copied). After done or error, returns the same state with consumed 0.
  body_step feed(std::span<const std::uint8_t> in);

  bool done() const { return state_ == state::done; }
  /// The peer closed: true when that ends the body correctly (until_close, or already done).
  bool eof_is_end() const;
  /// Body bytes passed so far, framing included.
  std::uint64_t bytes_through() const { return through_; }

 private:
  enum class state : std::uint8_t {
    counting,       // content_length / until_close
    size,           // chunk-size hex digits
    size_ws,        // whitespace after the size, before ';'
    ext,            // chunk extension bytes up to CR
    size_lf,        // LF ending the chunk-size line
    data,           // chunk data
    data_cr,        // CR after chunk data
    data_lf,        // LF after chunk data
    trailer_start,  // start of a trailer line, or the final CRLF
    trailer_line,   // a trailer field line up to CR
    trailer_lf,     // LF ending a trailer line
    final_lf,       // LF of the empty line ending the message
    done,
    error,
  };
  body_kind kind_;
  state state_;
  std::uint64_t left_ = 0;  ///< content_length bytes, or chunk data bytes, still due
  std::uint64_t through_ = 0;
  std::size_t digits_ = 0;   ///< hex digits of the current chunk size
  std::size_t line_ = 0;     ///< bytes of the current extension part
  std::size_t trailer_ = 0;  ///< bytes of the trailer section so far
  std::string_view error_;
};

}  // namespace edgerelay::tunnel
