// 602SQL frame encode/decode and the two tunnel translators (docs/602sql.md).
#include "sql602/codec.hpp"

#include <algorithm>
#include <string>

#include "tunnel/http_connect_codec.hpp"
#include "tunnel/http_text.hpp"

namespace edgerelay::tunnel::sql602 {

namespace {

// Compact the consumed front of an input buffer only once it is large, so small messages do not
// pay a memmove per event.
constexpr std::size_t compact_threshold = 64 * 1024;

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v & 0xFF));
  out.push_back(static_cast<std::uint8_t>((v >> 8) & 0xFF));
  out.push_back(static_cast<std::uint8_t>((v >> 16) & 0xFF));
  out.push_back(static_cast<std::uint8_t>((v >> 24) & 0xFF));
}

std::uint32_t get_u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

void compact(std::vector<std::uint8_t>& buf, std::size_t& pos) {
  if (pos == buf.size()) {
    buf.clear();
    pos = 0;
  } else if (pos >= compact_threshold) {
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
    pos = 0;
  }
}

bool is_letter(std::uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

std::vector<std::uint8_t> ok_response_head(std::uint64_t content_length) {
  std::vector<std::uint8_t> out;
  detail::append(out, "HTTP/1.1 200 OK\r\nContent-Length: ");
  detail::append(out, std::to_string(content_length));
  detail::append(out, "\r\n\r\n");
  return out;
}

}  // namespace

frame_header decode_frame_header(std::span<const std::uint8_t, frame_header_size> bytes) {
  return frame_header{get_u32(bytes.data()), get_u32(bytes.data() + 4), bytes[8]};
}

frame_check check_frame_header(const frame_header& h, std::uint32_t max_message) {
  if (h.total_len < frame_header_size) {
    return frame_check::too_short;
  }
  if (h.payload_size() > h.msg_total) {
    return frame_check::payload_over_total;
  }
  if (h.msg_total > max_message) {
    return frame_check::too_large;  // n <= msg_total, so this caps total_len as well
  }
  return frame_check::ok;
}

std::vector<std::uint8_t> encode_frame(data_type type, std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out;
  out.reserve(frame_header_size + payload.size());
  const auto n = static_cast<std::uint32_t>(payload.size());
  put_u32(out, static_cast<std::uint32_t>(frame_header_size) + n);
  put_u32(out, n);
  out.push_back(static_cast<std::uint8_t>(type));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<std::uint8_t> close_con_frame() {
  return encode_frame(data_type::close_con, {});
}

std::vector<std::uint8_t> connresult_frame(std::uint8_t kse) {
  const std::uint8_t payload[1] = {kse};
  return encode_frame(data_type::connresult, payload);
}

std::vector<std::uint8_t> connect_failure_reply(std::uint8_t kse, bool tunnelled_post) {
  if (tunnelled_post) {
    // A DT_ANSWER nobody asked for, return code 500 + KSE, flags 0 (5.7).
    std::vector<std::uint8_t> out = ok_response_head(4);
    const auto code = static_cast<std::uint16_t>(500 + kse);
    out.push_back(static_cast<std::uint8_t>(data_type::answer));
    out.push_back(static_cast<std::uint8_t>(code & 0xFF));
    out.push_back(static_cast<std::uint8_t>(code >> 8));
    out.push_back(0);
    return out;
  }
  const std::string body = "602SQL server refused the connection (KSE " + std::to_string(kse) + ")\n";
  std::vector<std::uint8_t> out;
  detail::append(out, kse == kse_ip_filter ? "HTTP/1.1 403 Forbidden (from your IP addresss)\r\n"
                                           : "HTTP/1.1 450 Bad Request\r\n");
  detail::append(out, "Content-Type: text/plain\r\nContent-Length: ");
  detail::append(out, std::to_string(body.size()));
  detail::append(out, "\r\n\r\n");
  detail::append(out, body);
  return out;
}

std::vector<std::uint8_t> method_not_allowed_reply() {
  return detail::to_bytes("HTTP/1.1 405 Method not allowed\r\n\r\n");
}

std::vector<std::uint8_t> bad_request_reply() {
  return detail::to_bytes("HTTP/1.1 450 Bad Request\r\nContent-Length: 0\r\n\r\n");
}

detect_result detect_tunnel(const request_head& head, std::span<const std::uint8_t> body_prefix) {
  if (head.method != "POST" || head.target != "/" || head.chunked || head.transfer_encoding || !head.content_length ||
      *head.content_length == 0) {
    return detect_result::not_tunnel;
  }
  if (body_prefix.empty()) {
    return detect_result::need_more;
  }
  return body_prefix.front() >= min_tunnel_type ? detect_result::tunnel : detect_result::not_tunnel;
}

// ---------------------------------------------------------------------------------------------
// client_translator

client_translator::client_translator(limits lim) : limits_(lim) {}
client_translator::~client_translator() = default;
client_translator::client_translator(client_translator&&) noexcept = default;
client_translator& client_translator::operator=(client_translator&&) noexcept = default;

bool client_translator::at_boundary() const {
  if (state_ != state::boundary) {
    return state_ == state::finished;
  }
  for (std::size_t i = pos_; i < pending_.size(); ++i) {
    if (pending_[i] != '\r' && pending_[i] != '\n') {
      return false;
    }
  }
  return true;
}

c2s_event client_translator::feed(std::span<const std::uint8_t> in) {
  if (state_ == state::finished) {
    return c2s::need_more{};
  }
  compact(pending_, pos_);
  pending_.insert(pending_.end(), in.begin(), in.end());
  return step();
}

c2s_event client_translator::finish_reject(std::vector<std::uint8_t> reply, std::string_view reason) {
  state_ = state::finished;
  reader_.reset();
  pending_.clear();
  pos_ = 0;
  frame_.clear();
  return c2s::reject{std::move(reply), reason};
}

c2s_event client_translator::step() {
  for (;;) {
    const std::size_t avail = pending_.size() - pos_;
    switch (state_) {
      case state::boundary: {
        while (pos_ < pending_.size() && (pending_[pos_] == '\r' || pending_[pos_] == '\n')) {
          ++pos_;
        }
        if (pos_ == pending_.size()) {
          return c2s::need_more{};
        }
        if (is_letter(pending_[pos_])) {
          request_reader_options o;
          o.header_limit = limits_.header_limit;
          o.classify_target = false;  // the stock server does not look at the target (5.5)
          reader_ = std::make_unique<request_head_reader>(o);
          fed_ = 0;
          state_ = state::head;
        } else {
          state_ = state::raw_frame;
        }
        continue;
      }

      case state::raw_frame: {
        // Only the native DT_CLOSE_CON can appear outside HTTP (5.8): 09 00 00 00, msg_total, EE.
        static constexpr std::uint8_t prefix[4] = {0x09, 0x00, 0x00, 0x00};
        const std::size_t n = std::min(avail, frame_header_size);
        for (std::size_t i = 0; i < n; ++i) {
          const std::uint8_t c = pending_[pos_ + i];
          if ((i < 4 && c != prefix[i]) || (i == 8 && c != static_cast<std::uint8_t>(data_type::close_con))) {
            return finish_reject(bad_request_reply(), "non-HTTP bytes other than the raw close frame");
          }
        }
        if (avail < frame_header_size) {
          return c2s::need_more{};
        }
        std::vector<std::uint8_t> bytes(pending_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                        pending_.begin() + static_cast<std::ptrdiff_t>(pos_ + frame_header_size));
        state_ = state::finished;
        close_frame_seen_ = true;
        pending_.clear();
        pos_ = 0;
        return c2s::close_frame{std::move(bytes)};
      }

      case state::head: {
        // Never hand the reader more than it may buffer: it fails at header_limit anyway, and the
        // rest (a body of up to max_message bytes) would only be copied for nothing.
        const std::size_t cap = limits_.header_limit + 1;
        const std::size_t give = std::min(avail, cap) - std::min(std::min(avail, cap), fed_);
        auto r = reader_->feed(std::span<const std::uint8_t>(pending_).subspan(pos_ + fed_, give));
        fed_ += give;
        if (std::holds_alternative<need_more>(r)) {
          return c2s::need_more{};
        }
        if (std::holds_alternative<http_error>(r)) {
          return finish_reject(bad_request_reply(), std::get<http_error>(r).reason);
        }
        auto& p = std::get<parsed<request_head>>(r);
        const request_head& h = p.value;
        reader_.reset();
        if (h.method != "POST") {
          return finish_reject(method_not_allowed_reply(), "tunnel request method is not POST");
        }
        if (h.transfer_encoding || h.chunked) {
          return finish_reject(bad_request_reply(), "chunked tunnel POST");
        }
        if (!h.content_length || *h.content_length == 0) {
          return finish_reject(bad_request_reply(), "tunnel POST without a body");
        }
        if (*h.content_length - 1 > limits_.max_message) {
          return finish_reject(bad_request_reply(), "tunnel POST body above the cap");
        }
        pos_ += p.consumed;
        body_left_ = *h.content_length;
        const auto n = static_cast<std::uint32_t>(body_left_ - 1);
        frame_.clear();
        // Grow with the bytes that really arrive, not with the client's declared length.
        frame_.reserve(std::min<std::size_t>(frame_header_size + n, compact_threshold));
        put_u32(frame_, static_cast<std::uint32_t>(frame_header_size) + n);
        put_u32(frame_, n);
        state_ = state::body;
        continue;
      }

      case state::body: {
        if (avail == 0) {
          return c2s::need_more{};
        }
        if (frame_.size() == 8 && pending_[pos_] < min_tunnel_type) {
          return finish_reject(bad_request_reply(), "tunnel POST body is not a tunnelled message");
        }
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, avail));
        frame_.insert(frame_.end(), pending_.begin() + static_cast<std::ptrdiff_t>(pos_),
                      pending_.begin() + static_cast<std::ptrdiff_t>(pos_ + take));
        pos_ += take;
        body_left_ -= take;
        if (body_left_ != 0) {
          return c2s::need_more{};
        }
        state_ = state::boundary;
        c2s::frame out{std::move(frame_)};
        frame_ = {};
        return out;
      }

      case state::finished: return c2s::need_more{};
    }
  }
}

// ---------------------------------------------------------------------------------------------
// server_translator

server_translator::server_translator(limits lim, bool expect_connect_result)
    : limits_(lim), state_(expect_connect_result ? state::connect_result : state::frames) {}

s2c_event server_translator::feed(std::span<const std::uint8_t> in) {
  if (state_ == state::finished) {
    return s2c::need_more{};
  }
  compact(pending_, pos_);
  pending_.insert(pending_.end(), in.begin(), in.end());
  return step();
}

s2c_event server_translator::step() {
  auto fail = [this](std::string_view reason) -> s2c_event {
    state_ = state::finished;
    pending_.clear();
    pos_ = 0;
    out_.clear();
    return s2c::protocol_error{reason};
  };
  auto check_reason = [](frame_check c) -> std::string_view {
    switch (c) {
      case frame_check::too_short: return "native frame total_len < 9";
      case frame_check::payload_over_total: return "native frame payload larger than msg_total";
      case frame_check::too_large: return "native message above the cap";
      case frame_check::ok: break;
    }
    return "bad native frame";
  };

  for (;;) {
    if (state_ == state::finished) {
      return s2c::need_more{};
    }
    const std::size_t avail = pending_.size() - pos_;

    if (state_ == state::connect_result) {
      // 6.2: exactly one DT_CONNRESULT with n == 1 opens the session.
      if (avail < frame_header_size) {
        return s2c::need_more{};
      }
      const frame_header h = decode_frame_header(
          std::span<const std::uint8_t, frame_header_size>(pending_.data() + pos_, frame_header_size));
      if (check_frame_header(h, limits_.max_message) != frame_check::ok ||
          h.type != static_cast<std::uint8_t>(data_type::connresult) || h.payload_size() != 1) {
        state_ = state::finished;
        pending_.clear();
        pos_ = 0;
        return s2c::refused{kse_connection, "first server frame is not DT_CONNRESULT"};
      }
      if (avail < frame_header_size + 1) {
        return s2c::need_more{};
      }
      const std::uint8_t rr = pending_[pos_ + frame_header_size];
      pos_ += frame_header_size + 1;
      if (rr != 0) {
        state_ = state::finished;
        pending_.clear();
        pos_ = 0;
        return s2c::refused{rr, "server refused the session"};
      }
      state_ = state::frames;
      return s2c::connected{};
    }

    if (!in_frame_) {
      if (avail < frame_header_size) {
        return s2c::need_more{};
      }
      const frame_header h = decode_frame_header(
          std::span<const std::uint8_t, frame_header_size>(pending_.data() + pos_, frame_header_size));
      if (const auto c = check_frame_header(h, limits_.max_message); c != frame_check::ok) {
        return fail(check_reason(c));
      }
      pos_ += frame_header_size;
      const std::uint32_t n = h.payload_size();
      if (in_message_) {
        // 3.3: the frames of a split message are consecutive, same type and msg_total.
        if (h.type != type_ || h.msg_total != msg_total_) {
          return fail("split native message interrupted by another message");
        }
        if (n > msg_left_) {
          return fail("split native message longer than msg_total");
        }
      } else {
        in_message_ = true;
        type_ = h.type;
        msg_total_ = h.msg_total;
        msg_left_ = h.msg_total;
        const auto t = static_cast<data_type>(h.type);
        if (t == data_type::close_con) {
          // 6.4: nothing is written for it; close the client after what was already queued.
          state_ = state::finished;
          pending_.clear();
          pos_ = 0;
          return s2c::close_client{};
        }
        if (t == data_type::connresult || t == data_type::keepalive) {
          disposition_ = disposition::drop;
          out_.clear();
        } else if (t == data_type::serverdown && h.msg_total == 0) {
          disposition_ = disposition::respond;
          out_ = ok_response_head(2);
          out_.push_back(h.type);
          out_.push_back(0x00);  // the HTTP server's one-byte payload (5.3)
        } else {
          disposition_ = disposition::respond;
          out_ = ok_response_head(static_cast<std::uint64_t>(h.msg_total) + 1);
          out_.reserve(std::min<std::size_t>(out_.size() + 1 + h.msg_total, compact_threshold));
          out_.push_back(h.type);
        }
      }
      in_frame_ = true;
      frame_left_ = n;
    }

    const auto take = static_cast<std::uint32_t>(std::min<std::size_t>(frame_left_, pending_.size() - pos_));
    if (disposition_ == disposition::respond && take > 0) {
      out_.insert(out_.end(), pending_.begin() + static_cast<std::ptrdiff_t>(pos_),
                  pending_.begin() + static_cast<std::ptrdiff_t>(pos_ + take));
    }
    pos_ += take;
    frame_left_ -= take;
    msg_left_ -= take;
    if (frame_left_ != 0) {
      return s2c::need_more{};
    }
    in_frame_ = false;
    if (msg_left_ != 0) {
      continue;  // a split message: the next frame continues it
    }
    in_message_ = false;
    if (disposition_ == disposition::drop) {
      continue;
    }
    s2c::response r{std::move(out_)};
    out_ = {};
    return r;
  }
}

}  // namespace edgerelay::tunnel::sql602
