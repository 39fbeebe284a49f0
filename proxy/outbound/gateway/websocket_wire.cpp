// The WebSocket tunnel's control messages and Beast's websocket::stream over a client_stream.
#include "proxy/outbound/gateway/websocket_wire.hpp"

#include <algorithm>
#include <exception>

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/system/errc.hpp>

// Beast tears a WebSocket's connection down and closes it on a timeout through these customization
// points, found by argument-dependent lookup on the next layer's type.
namespace edgerelay::tunnel {
namespace {

net::awaitable<error_code> teardown_connection(client_stream& s) {
  // After the close frames: end our direction (close_notify on TLS, then FIN), then read what is
  // left until the peer's end, so the close is no reset. Beast's close timeout bounds the wait.
  if (const error_code ec = co_await s.shutdown_send(std::chrono::milliseconds(2000)); ec) {
    co_return ec;
  }
  std::array<std::uint8_t, 512> sink;
  for (int i = 0; i < 128; ++i) {
    auto [ec, n] = co_await s.async_read_some(net::buffer(sink), use_ec);
    if (ec == net::error::eof || ec == net::ssl::error::stream_truncated) {
      co_return error_code{};
    }
    if (ec) {
      co_return ec;
    }
  }
  co_return error_code{};
}

}  // namespace

void beast_close_socket(client_stream& s) {
  s.close();
}

void teardown(boost::beast::role_type, client_stream& s, error_code& ec) {
  s.socket().shutdown(tcp::socket::shutdown_send, ec);
}

template <class Handler>
void async_teardown(boost::beast::role_type, client_stream& s, Handler&& handler) {
  net::co_spawn(s.get_executor(), teardown_connection(s),
                [h = std::forward<Handler>(handler)](std::exception_ptr failure, error_code ec) mutable {
                  if (failure) {
                    ec = net::error::no_memory;  // only an allocation can throw here
                  }
                  std::move(h)(ec);
                });
}

}  // namespace edgerelay::tunnel

namespace edgerelay::proxy::gateway {
namespace {

namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;

/// Aborts the operation of its scope when `slot` is emitted, by cancelling the socket.
class cancel_on_emit {
 public:
  cancel_on_emit(net::cancellation_slot slot, tunnel::client_stream& stream) : slot_(slot) {
    if (slot_.is_connected()) {
      slot_.assign([&stream](net::cancellation_type) {
        error_code ignored;
        stream.socket().cancel(ignored);
      });
    }
  }
  ~cancel_on_emit() {
    if (slot_.is_connected()) {
      slot_.clear();
    }
  }
  cancel_on_emit(const cancel_on_emit&) = delete;
  cancel_on_emit& operator=(const cancel_on_emit&) = delete;

 private:
  net::cancellation_slot slot_;
};

error_code protocol_error() {
  return make_error_code(boost::system::errc::protocol_error);
}

/// A small JSON reader, enough for one flat object of scalar members.
class json_reader {
 public:
  explicit json_reader(std::string_view text) : s_(text) {}

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool at_end() {
    skip_space();
    return i_ == s_.size();
  }
  /// A string; escapes other than \" \\ \/ are kept as written (no op name needs them).
  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
      if (c == '\\') {
        if (i_ >= s_.size()) return std::nullopt;
        const char e = s_[i_++];
        if (e == '"' || e == '\\' || e == '/') {
          out += e;
        } else if (std::string_view("bfnrtu").find(e) != std::string_view::npos) {
          out += '\\';
          out += e;
        } else {
          return std::nullopt;
        }
        continue;
      }
      out += c;
    }
    return std::nullopt;
  }
  /// A number, true, false or null (not kept).
  bool scalar() {
    skip_space();
    for (std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return true;
      }
    }
    const std::size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-.0123456789eE").find(s_[i_]) != std::string_view::npos) ++i_;
    return i_ > start;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

control_op parse_control(std::string_view text) noexcept {
  json_reader r(text);
  if (!r.eat('{')) return control_op::malformed;
  std::optional<std::string> op;
  if (!r.eat('}')) {
    for (;;) {
      std::optional<std::string> key = r.string();
      if (!key || !r.eat(':')) return control_op::malformed;
      if (*key == "op") {
        if (op) return control_op::malformed;  // twice: which one counts would be a guess
        op = r.string();
        if (!op) return control_op::malformed;
      } else if (!r.string() && !r.scalar()) {
        return control_op::malformed;
      }
      if (r.eat('}')) break;
      if (!r.eat(',')) return control_op::malformed;
    }
  }
  if (!r.at_end() || !op) return control_op::malformed;
  if (*op == "fin") return control_op::fin;
  if (*op == "break") return control_op::break_query;
  return control_op::unknown;
}

std::string_view control_text(control_op op) noexcept {
  return op == control_op::break_query ? R"({"op":"break"})" : R"({"op":"fin"})";
}

std::vector<std::uint8_t> server_close_frame(close_code code) {
  const auto c = static_cast<std::uint16_t>(code);
  return {0x88, 0x02, static_cast<std::uint8_t>(c >> 8), static_cast<std::uint8_t>(c & 0xff)};
}

struct ws_channel::impl {
  explicit impl(tunnel::client_stream& s) : ws(s) {}
  websocket::stream<tunnel::client_stream&> ws;
  std::function<void()> pong;
  std::string control;  ///< the text message being read
};

ws_channel::ws_channel(tunnel::client_stream& stream, std::chrono::milliseconds close_timeout)
    : impl_(std::make_unique<impl>(stream)), stream_(stream) {
  auto& ws = impl_->ws;
  websocket::stream_base::timeout t{};
  t.handshake_timeout = close_timeout;
  t.idle_timeout = websocket::stream_base::none();
  t.keep_alive_pings = false;
  ws.set_option(t);
  ws.read_message_max(websocket_max_message);
  ws.auto_fragment(false);
  ws.binary(true);
  ws.control_callback([this](websocket::frame_type kind, boost::beast::string_view) {
    if (kind == websocket::frame_type::pong && impl_->pong) impl_->pong();
  });
}

ws_channel::~ws_channel() = default;

net::awaitable<error_code> ws_channel::accept(const tunnel::request_head& head, std::string subprotocol,
                                              net::cancellation_slot cancel_slot) {
  http::request<http::empty_body> req;
  req.method_string(head.method);
  req.target(head.target);
  req.version(head.version);
  for (const auto& f : head.fields) {
    req.insert(f.name, f.value);
  }
  impl_->ws.set_option(websocket::stream_base::decorator([sp = std::move(subprotocol)](websocket::response_type& res) {
    res.set(http::field::server, "edgerelay");
    if (!sp.empty()) res.set(http::field::sec_websocket_protocol, sp);
  }));
  cancel_on_emit guard(cancel_slot, stream_);
  auto [ec] = co_await impl_->ws.async_accept(req, use_ec);
  co_return ec;
}

net::awaitable<handshake_answer> ws_channel::handshake(std::string host, std::string target,
                                                       std::vector<std::pair<std::string, std::string>> headers,
                                                       net::cancellation_slot cancel_slot) {
  impl_->ws.set_option(websocket::stream_base::decorator([h = std::move(headers)](websocket::request_type& req) {
    req.set(http::field::user_agent, "edgerelay");
    for (const auto& [name, value] : h) req.set(name, value);
  }));
  websocket::response_type res;
  handshake_answer out;
  {
    cancel_on_emit guard(cancel_slot, stream_);
    auto [ec] = co_await impl_->ws.async_handshake(res, host, target, use_ec);
    out.ec = ec;
  }
  out.status = res.result_int();
  out.body = res.body().substr(0, 512);
  out.result = std::string(res["Edgerelay-Result"]);
  out.subprotocol = std::string(res[http::field::sec_websocket_protocol]);
  co_return out;
}

net::awaitable<channel_read> ws_channel::read(net::mutable_buffer into, net::cancellation_slot cancel_slot) {
  auto& ws = impl_->ws;
  cancel_on_emit guard(cancel_slot, stream_);
  for (;;) {
    auto [ec, n] = co_await ws.async_read_some(into, use_ec);
    if (ec == websocket::error::closed) {
      co_return channel_read{net::error::eof, 0, std::nullopt};
    }
    if (ec) {
      co_return channel_read{ec, 0, std::nullopt};
    }
    if (ws.got_text()) {
      if (impl_->control.size() + n > websocket_max_control) {
        impl_->control.clear();
        co_await close(close_code::policy_violation, "control message too long");
        co_return channel_read{protocol_error(), 0, std::nullopt};
      }
      impl_->control.append(static_cast<const char*>(into.data()), n);
      if (ws.is_message_done()) {
        const control_op op = parse_control(impl_->control);
        impl_->control.clear();
        co_return channel_read{error_code{}, 0, op};
      }
      continue;
    }
    if (n > 0) {
      co_return channel_read{error_code{}, n, std::nullopt};
    }
  }
}

net::awaitable<std::pair<error_code, std::size_t>> ws_channel::write_bytes(net::const_buffer bytes,
                                                                           net::cancellation_slot cancel_slot) {
  auto& ws = impl_->ws;
  cancel_on_emit guard(cancel_slot, stream_);
  writing_ = true;
  ws.binary(true);
  const auto* p = static_cast<const std::uint8_t*>(bytes.data());
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const std::size_t chunk = std::min(websocket_send_chunk, bytes.size() - sent);
    auto [ec, n] = co_await ws.async_write(net::buffer(p + sent, chunk), use_ec);
    if (ec) {
      writing_ = false;
      co_return std::pair{ec, sent};
    }
    sent += chunk;
  }
  writing_ = false;
  co_return std::pair{error_code{}, sent};
}

net::awaitable<error_code> ws_channel::write_control(control_op op, net::cancellation_slot cancel_slot) {
  auto& ws = impl_->ws;
  cancel_on_emit guard(cancel_slot, stream_);
  const std::string_view text = control_text(op);
  writing_ = true;
  ws.text(true);
  auto [ec, n] = co_await ws.async_write(net::buffer(text.data(), text.size()), use_ec);
  ws.binary(true);
  writing_ = false;
  co_return ec;
}

net::awaitable<error_code> ws_channel::ping() {
  auto [ec] = co_await impl_->ws.async_ping({}, use_ec);
  co_return ec;
}

net::awaitable<error_code> ws_channel::close(close_code code, std::string_view reason) {
  auto& ws = impl_->ws;
  if (!ws.is_open()) {
    co_return error_code{};
  }
  websocket::close_reason why(static_cast<std::uint16_t>(code));
  why.reason = std::string(reason.substr(0, 120));
  auto [ec] = co_await ws.async_close(why, use_ec);
  co_return ec;
}

void ws_channel::on_pong(std::function<void()> callback) {
  impl_->pong = std::move(callback);
}

bool ws_channel::is_open() const noexcept {
  return impl_->ws.is_open();
}

void ws_channel::cancel(error_code& ec) noexcept {
  stream_.socket().cancel(ec);
}

}  // namespace edgerelay::proxy::gateway
