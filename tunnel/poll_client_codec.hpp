// The client side of the HTTP-polling tunnel (docs/tunnel-protocol.md, "HTTP polling"), sans-I/O:
// the requests `edgerelay client` writes (open, up, down, close) and the reading of the gateway's
// complete, Content-Length'd answers, plus the sequence bookkeeping of one session.
//
// The driver writes a request, then loops: read what is there -> feed(); feed() says how much of
// the input it took, so bytes behind an answer (there should be none: one request at a time per
// connection) are never mistaken for part of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/polling_codec.hpp"

namespace edgerelay::tunnel {

/// Where and as whom a client's polling requests go.
struct poll_client_target {
  std::string path = "/edgerelay";  ///< the gateway's websocket_path
  std::string authority;            ///< the gateway's host:port (Host, and the absolute form)
  bool absolute_form = false;       ///< through a plain-HTTP forwarding proxy
  std::string authorization;        ///< full `Authorization` value for the gateway, or empty (secret)
  std::string proxy_authorization;  ///< full `Proxy-Authorization` value, or empty (secret)
};

/// `target` percent-encoded for a query value (unreserved characters and ':' kept).
std::string poll_query_encode(std::string_view target);

/// `POST {path}/poll/open?target=... HTTP/1.1` with an empty body.
std::string poll_open_request(const poll_client_target& t, std::string_view target);
/// The head of `POST {path}/poll/{id}/up?seq=N` for a body of `body_size` bytes (written after it),
/// with `Edgerelay-Control: fin` or `break` unless control is none.
std::string poll_up_head(const poll_client_target& t, std::string_view id, std::uint64_t seq, std::size_t body_size,
                         poll_control control);
/// `GET {path}/poll/{id}/down?seq=M`.
std::string poll_down_request(const poll_client_target& t, std::string_view id, std::uint64_t seq);
/// `POST {path}/poll/{id}/close`.
std::string poll_close_request(const poll_client_target& t, std::string_view id);

/// One answer as read.
struct poll_answer {
  unsigned status = 0;
  std::string reason;                         ///< as sent (escape before logging)
  std::optional<std::uint64_t> ack;           ///< Edgerelay-Ack
  std::optional<std::uint64_t> seq;           ///< Edgerelay-Seq
  poll_control control = poll_control::none;  ///< Edgerelay-Control: fin (break never comes down)
  std::string result;                         ///< Edgerelay-Result: set only by the gateway itself
  std::string proxy_authenticate;             ///< a 407's challenge
  bool keep_alive = true;                     ///< the connection may carry the next request
  std::vector<std::uint8_t> body;
};

/// Reads one answer: a status line, headers, and exactly Content-Length bytes of body (none for
/// 1xx-less 204 and 304). Chunked or length-less bodies with content, a body above `body_limit`,
/// and a head above `head_limit` are malformed: the gateway never sends them, and a proxy that does
/// is not one the polling transport can cross.
class poll_answer_reader {
 public:
  enum class state : std::uint8_t { need_more, done, malformed };
  struct fed {
    state now = state::need_more;
    std::size_t consumed = 0;  ///< of the input given to this feed()
  };

  explicit poll_answer_reader(std::size_t body_limit = poll_max_body, std::size_t head_limit = 16 * 1024);
  /// Bytes read since the last call, in any split; takes nothing once done or malformed.
  fed feed(std::span<const std::uint8_t> in);
  const poll_answer& answer() const noexcept { return answer_; }
  poll_answer& answer() noexcept { return answer_; }
  /// Static text for a malformed answer.
  std::string_view what() const noexcept { return what_; }

 private:
  state parse_head();

  std::size_t body_limit_;
  std::size_t head_limit_;
  std::vector<std::uint8_t> head_;
  std::size_t scan_ = 0;
  bool in_body_ = false;
  std::uint64_t body_size_ = 0;
  state state_ = state::need_more;
  std::string_view what_;
  poll_answer answer_;
};

/// The sequence numbers of one session, as the client keeps them: the next up seq (advanced only
/// on the gateway's 204 with a matching Edgerelay-Ack) and the next down seq (advanced once a
/// chunk with a matching Edgerelay-Seq was taken, which acknowledges it on the next request).
class poll_sequence {
 public:
  std::uint64_t up() const noexcept { return up_; }
  std::uint64_t down() const noexcept { return down_; }
  /// True when `a` accepts the up request of seq up(); advances it.
  bool up_accepted(const poll_answer& a) noexcept;
  /// For a 200 to down(): true when its Edgerelay-Seq matches. A chunk with bytes or fin advances
  /// down(); an empty one (the hold ran out) does not.
  bool down_answered(const poll_answer& a) noexcept;

 private:
  std::uint64_t up_ = 0;
  std::uint64_t down_ = 0;
};

}  // namespace edgerelay::tunnel
