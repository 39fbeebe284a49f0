// 602SQL native framing and the HTTP-tunnel <-> native translator (docs/602sql.md), sans-I/O.
//
// Native frame (docs/602sql.md), all integers little-endian:
//
//   offset size field
//   0      4    total_len  u32 = 9 + n
//   4      4    msg_total  u32  length of the whole message the frame belongs to
//   8      1    type       u8   (data_type)
//   9      n    payload
//
// The gateway holds one native connection per tunnel client and runs two independent objects at
// once (docs/602sql.md: the tunnel is a full-duplex message stream, never pair requests and
// responses):
//   client_translator  client HTTP POSTs -> one native frame each, towards the server (6.3)
//   server_translator  server frames (split messages reassembled) -> HTTP responses (6.2, 6.4)
// Each has the h11-style loop of socks_server: feed(bytes) returns the next event; call feed({})
// again until need_more, acting on each event in order. Neither throws on untrusted input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace edgerelay::tunnel {
struct request_head;
class request_head_reader;
}  // namespace edgerelay::tunnel

namespace edgerelay::tunnel::sql602 {

/// bDataType values (docs/602sql.md).
enum class data_type : std::uint8_t {
  close_con = 0xEE,
  message = 0xEF,
  keepalive = 0xF0,
  version = 0xF1,
  importack = 0xF2,
  importrq = 0xF3,
  exportack = 0xF4,
  exportrq = 0xF5,
  serverdown = 0xF6,
  connresult = 0xF7,
  brk = 0xFA,
  nums = 0xFB,
  answer = 0xFE,
  request = 0xFF,
};

/// A body whose first byte is at least this is a tunnelled message (TUNELLED_REQUEST, section 2).
inline constexpr std::uint8_t min_tunnel_type = 0xEE;
inline constexpr std::size_t frame_header_size = 9;
/// The gateway's cap on one message (docs/602sql.md suggests 64 MiB); the stock peers have none.
inline constexpr std::uint32_t default_max_message = 64U * 1024U * 1024U;
/// KSE codes the gateway itself reports (docs/602sql.md).
inline constexpr std::uint8_t kse_connection = 15;
inline constexpr std::uint8_t kse_ip_filter = 45;

struct frame_header {
  std::uint32_t total_len = 0;
  std::uint32_t msg_total = 0;
  std::uint8_t type = 0;
  std::uint32_t payload_size() const { return total_len - static_cast<std::uint32_t>(frame_header_size); }
};

enum class frame_check : std::uint8_t {
  ok,
  too_short,           ///< total_len < 9
  payload_over_total,  ///< n > msg_total
  too_large,           ///< msg_total above the cap
};

/// Reads the 9 header bytes (no validation; see check_frame_header).
frame_header decode_frame_header(std::span<const std::uint8_t, frame_header_size> bytes);

/// The three rejections of docs/602sql.md; a failed check ends that one session.
frame_check check_frame_header(const frame_header& h, std::uint32_t max_message = default_max_message);

/// One whole message as one frame (msg_total == n, 3.2), ready for a single write.
std::vector<std::uint8_t> encode_frame(data_type type, std::span<const std::uint8_t> payload);

/// DT_CLOSE_CON, `09 00 00 00 00 00 00 00 EE`: sent to the server when the tunnel client goes away
/// without its raw close frame (6.4, last paragraph).
std::vector<std::uint8_t> close_con_frame();

/// DT_CONNRESULT `0A 00 00 00 01 00 00 00 F7 RR`: what a forward door sends a native client when it
/// cannot reach the backend (RR = 15, docs/602sql.md).
std::vector<std::uint8_t> connresult_frame(std::uint8_t kse);

/// The HTTP reply for a tunnel whose backend refused or could not be reached (6.2 step 4, 5.7):
/// tunnelled first POST: `HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n` FE u16(500 + kse) 00;
/// otherwise `HTTP/1.1 450 Bad Request` (kse 45: `HTTP/1.1 403 Forbidden (from your IP addresss)`,
/// the stock server's spelling) with Content-Type: text/plain, Content-Length and a one-line body.
std::vector<std::uint8_t> connect_failure_reply(std::uint8_t kse, bool tunnelled_post);

/// 6.3 error bytes: a method other than POST.
std::vector<std::uint8_t> method_not_allowed_reply();  // "HTTP/1.1 405 Method not allowed\r\n\r\n"
/// 6.3 error bytes: any other malformed input.
std::vector<std::uint8_t> bad_request_reply();  // "HTTP/1.1 450 Bad Request\r\nContent-Length: 0\r\n\r\n"

enum class detect_result : std::uint8_t { need_more, tunnel, not_tunnel };

/// 6.1: a tunnel's first request is `POST /` with Content-Length >= 1, not chunked, and a first
/// body byte >= 0xEE. `body_prefix` is what followed the head (request_head_reader::leftover()).
/// Host is not looked at: a stock client sends none, and an absolute- or authority-form target
/// already tells a proxy request apart.
detect_result detect_tunnel(const request_head& head, std::span<const std::uint8_t> body_prefix);

struct limits {
  std::size_t header_limit = 8 * 1024;              ///< a stock POST head is about 40 bytes
  std::uint32_t max_message = default_max_message;  ///< payload bytes n of one message
};

namespace c2s {
struct need_more {};
/// One native frame (msg_total == n): write it to the server in ONE write (docs/602sql.md).
struct frame {
  std::vector<std::uint8_t> bytes;
};
/// The raw DT_CLOSE_CON the client wrote outside HTTP (5.8): write `bytes` (unchanged) to the
/// server, then close the client side and let the server side close. Terminal.
struct close_frame {
  std::vector<std::uint8_t> bytes;
};
/// Malformed client input: write `reply` to the client, then close both sides. Terminal.
struct reject {
  std::vector<std::uint8_t> reply;
  std::string_view reason;  ///< static text for logs
};
}  // namespace c2s

using c2s_event = std::variant<c2s::need_more, c2s::frame, c2s::close_frame, c2s::reject>;

/// Client -> server direction: HTTP POSTs to native frames (6.3).
///
/// At a message boundary CR and LF bytes are skipped (as the stock server does, 5.5); a letter
/// starts an HTTP request; anything else must be the 9-byte raw close frame `09 00 00 00 xx xx xx
/// xx EE`. A POST needs Content-Length n+1 >= 1, no Transfer-Encoding, first body byte >= 0xEE,
/// n <= max_message; another method gets 405, anything else malformed 450 (exact bytes above).
/// Thread safety: one object per tunnel, used from one thread; independent of server_translator.
class client_translator {
 public:
  explicit client_translator(limits lim = {});
  ~client_translator();
  client_translator(client_translator&&) noexcept;
  client_translator& operator=(client_translator&&) noexcept;

  /// Append `in` (copied; may be empty) and return the next event.
  c2s_event feed(std::span<const std::uint8_t> in);

  /// True after a terminal event (close_frame or reject); later feeds return need_more.
  bool finished() const { return state_ == state::finished; }
  /// True once the raw close frame was seen, so the proxy must not send its own DT_CLOSE_CON.
  bool close_frame_seen() const { return close_frame_seen_; }
  /// True between messages (no partial request buffered): a client EOF here is a clean close.
  bool at_boundary() const;

 private:
  enum class state : std::uint8_t { boundary, raw_frame, head, body, finished };
  c2s_event step();
  c2s_event finish_reject(std::vector<std::uint8_t> reply, std::string_view reason);

  limits limits_;
  state state_ = state::boundary;
  std::vector<std::uint8_t> pending_;  ///< input not yet translated, from pos_
  std::size_t pos_ = 0;
  std::unique_ptr<request_head_reader> reader_;  ///< the head of the message being read
  std::size_t fed_ = 0;                          ///< bytes from pos_ already given to reader_
  std::uint64_t body_left_ = 0;
  std::vector<std::uint8_t> frame_;  ///< the frame being built: 8-byte prefix + body bytes
  bool close_frame_seen_ = false;
};

namespace s2c {
struct need_more {};
/// The server's DT_CONNRESULT 0 was consumed (not forwarded, 6.2 step 3): start relaying.
struct connected {};
/// The session could not start (RR != 0, or the first frame was not DT_CONNRESULT with n == 1, then
/// kse = 15): answer the client's first request with connect_failure_reply(kse, ...), close both.
struct refused {
  std::uint8_t kse = kse_connection;
  std::string_view reason;
};
/// One complete message as one HTTP response: write it to the client, in order.
struct response {
  std::vector<std::uint8_t> bytes;
};
/// DT_CLOSE_CON from the server: after the responses already written, close the client. Terminal.
struct close_client {};
/// Bad framing from the server (3.4, 6.4): close both sides. Terminal.
struct protocol_error {
  std::string_view reason;
};
}  // namespace s2c

using s2c_event =
    std::variant<s2c::need_more, s2c::connected, s2c::refused, s2c::response, s2c::close_client, s2c::protocol_error>;

/// Server -> client direction: native frames to HTTP responses (6.2, 6.4).
///
/// First frame: DT_CONNRESULT (consumed). Then every message, reassembled by msg_total from
/// consecutive frames of one type and one msg_total, becomes `HTTP/1.1 200 OK\r\nContent-Length:
/// <m+1>\r\n\r\n` T p; DT_SERVERDOWN with m == 0 becomes body `F6 00`; DT_CLOSE_CON gives
/// close_client; a later DT_CONNRESULT and DT_KEEPALIVE are dropped. Unsolicited messages
/// (DT_MESSAGE, DT_SERVERDOWN) are translated like any other: the translator never waits for a POST.
/// Thread safety: one object per tunnel, used from one thread; independent of client_translator.
class server_translator {
 public:
  /// expect_connect_result = false when the caller already consumed DT_CONNRESULT itself.
  explicit server_translator(limits lim = {}, bool expect_connect_result = true);

  /// Append `in` (copied; may be empty) and return the next event.
  s2c_event feed(std::span<const std::uint8_t> in);

  /// True after refused, close_client or protocol_error; later feeds return need_more.
  bool finished() const { return state_ == state::finished; }

 private:
  enum class state : std::uint8_t { connect_result, frames, finished };
  enum class disposition : std::uint8_t { respond, drop };
  s2c_event step();

  limits limits_;
  state state_;
  std::vector<std::uint8_t> pending_;
  std::size_t pos_ = 0;
  // The message being reassembled (3.3).
  bool in_message_ = false;
  bool in_frame_ = false;  ///< payload bytes of the current frame are still due
  std::uint8_t type_ = 0;
  std::uint32_t msg_total_ = 0;
  std::uint32_t msg_left_ = 0;    ///< payload bytes of the message still due
  std::uint32_t frame_left_ = 0;  ///< payload bytes of the current frame still due
  disposition disposition_ = disposition::respond;
  std::vector<std::uint8_t> out_;  ///< response head + T + payload so far
};

}  // namespace edgerelay::tunnel::sql602
