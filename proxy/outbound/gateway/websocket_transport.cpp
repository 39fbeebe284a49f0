// The WebSocket transport: the upgrade, the answer mapped to an outcome, and the gateway leg with
// its keepalive pings and in-band breaks.
#include "proxy/outbound/gateway/websocket_transport.hpp"

#include <exception>
#include <memory>
#include <utility>
#include <vector>

#include <boost/asio/detached.hpp>
#include <boost/system/errc.hpp>

#include "proxy/observe/log.hpp"
#include "proxy/outbound/gateway/websocket_wire.hpp"

namespace edgerelay::proxy::gateway {
namespace {

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == ':';
}

std::string percent_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    if (unreserved(c)) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += hex[b >> 4];
      out += hex[b & 0x0f];
    }
  }
  return out;
}

/// What one session's WebSocket holds. Shared by the leg and its background work (the keepalive
/// loop, a break being sent), so a ping still on the wire when the session ends keeps the stream
/// it writes to alive until it completes.
struct link {
  link(tunnel::client_stream s, const websocket_options& o)
      : stream(std::move(s)),
        channel(stream, o.close_timeout),
        ping_timer(stream.get_executor()),
        writer_free(stream.get_executor()) {}

  tunnel::client_stream stream;
  ws_channel channel;
  net::steady_timer ping_timer;
  net::steady_timer writer_free;  ///< a write waits on it while a break is being sent
  unsigned breaks_pending = 0;
  bool sending_breaks = false;  ///< the break sender is writing
  bool writer_busy = false;     ///< write() or shutdown_send() is under way (it sends the breaks itself)
  bool reading = false;
  bool alive = true;  ///< a pong or a message came since the last ping
  bool peer_fin = false;
  bool fin_sent = false;
  bool ping_timed_out = false;
  bool closed = false;

  void end() noexcept {
    closed = true;
    try {
      ping_timer.cancel();
      writer_free.cancel();
    } catch (...) {
      // A timer cancel that fails leaves its wait to end with the connection.
    }
    stream.close();
  }
};

net::awaitable<void> keep_alive(std::shared_ptr<link> l, websocket_options o) {
  for (;;) {
    l->ping_timer.expires_after(o.ping_interval);
    co_await l->ping_timer.async_wait(use_ec);
    if (l->closed || l->peer_fin) {
      co_return;  // after the gateway's fin nothing reads a pong, and nothing more is expected
    }
    l->alive = false;
    const error_code ec = co_await l->channel.ping();
    if (l->closed || ec) {
      co_return;  // a failed connection is the relay's to see
    }
    l->ping_timer.expires_after(o.ping_timeout);
    co_await l->ping_timer.async_wait(use_ec);
    if (l->closed || l->peer_fin) {
      co_return;
    }
    // Only a leg that was waiting for the gateway can tell a missing pong: while the relay is
    // busy writing what it read, nothing reads the pong.
    if (!l->alive && l->reading) {
      log::warn("gateway", "no pong from the gateway within ", o.ping_timeout.count(), " ms; ending the session");
      l->ping_timed_out = true;
      l->end();
      co_return;
    }
  }
}

net::awaitable<void> send_breaks(std::shared_ptr<link> l) {
  while (l->breaks_pending > 0 && !l->closed) {
    --l->breaks_pending;
    if (const error_code ec = co_await l->channel.write_control(control_op::break_query); ec) {
      break;
    }
  }
  l->sending_breaks = false;
  l->writer_free.cancel();
}

class websocket_gateway_leg final : public gateway_leg {
 public:
  websocket_gateway_leg(std::shared_ptr<link> l, const websocket_options& o) : link_(std::move(l)) {
    link* raw = link_.get();
    link_->channel.on_pong([raw] { raw->alive = true; });
    net::co_spawn(link_->stream.get_executor(), keep_alive(link_, o), net::detached);
  }
  ~websocket_gateway_leg() override { close(); }

  net::awaitable<std::pair<error_code, std::size_t>> read_some(net::mutable_buffer into,
                                                               net::cancellation_slot cancel_slot) override {
    link& l = *link_;
    for (;;) {
      if (l.peer_fin) {
        co_return std::pair{error_code(net::error::eof), std::size_t{0}};
      }
      if (l.closed) {
        co_return std::pair{error_code(net::error::operation_aborted), std::size_t{0}};
      }
      l.reading = true;
      const channel_read r = co_await l.channel.read(into, cancel_slot);
      l.reading = false;
      if (r.ec) {
        co_return std::pair{l.ping_timed_out ? error_code(net::error::timed_out) : r.ec, std::size_t{0}};
      }
      l.alive = true;
      if (!r.control) {
        co_return std::pair{error_code{}, r.n};
      }
      if (*r.control == control_op::fin) {
        l.peer_fin = true;
        if (l.fin_sent) {
          co_await l.channel.close(close_code::normal, "");
        }
        continue;
      }
      // The gateway sends no other control message: this one is from a newer or a broken peer.
      co_await l.channel.close(close_code::policy_violation, "unexpected control message");
      co_return std::pair{make_error_code(boost::system::errc::protocol_error), std::size_t{0}};
    }
  }

  net::awaitable<std::pair<error_code, std::size_t>> write(net::const_buffer bytes,
                                                           net::cancellation_slot cancel_slot) override {
    link& l = *link_;
    if (const error_code ec = co_await take_writer(); ec) {
      co_return std::pair{ec, std::size_t{0}};
    }
    auto result = co_await l.channel.write_bytes(bytes, cancel_slot);
    l.writer_busy = false;
    if (l.breaks_pending > 0 && !l.closed && !l.fin_sent) {
      // A break queued while these bytes were on their way: sent now, not with the next write,
      // which an idle 602SQL client waiting for its answer never makes.
      l.sending_breaks = true;
      net::co_spawn(l.stream.get_executor(), send_breaks(link_), net::detached);
    }
    co_return result;
  }

  net::awaitable<error_code> shutdown_send() override {
    link& l = *link_;
    if (const error_code ec = co_await take_writer(); ec) {
      co_return ec;
    }
    const error_code ec = co_await l.channel.write_control(control_op::fin);
    l.writer_busy = false;
    l.fin_sent = true;
    if (!ec && l.peer_fin) {
      co_await l.channel.close(close_code::normal, "");
    }
    co_return ec;
  }

  void cancel(error_code& ec) noexcept override {
    link_->closed = true;  // the leg is only closed after this
    try {
      link_->writer_free.cancel();
    } catch (...) {
      // the write waiting on it ends with the connection's cancel below
    }
    link_->channel.cancel(ec);
  }

  void close() noexcept override { link_->end(); }

  void send_break() noexcept override {
    link& l = *link_;
    if (l.closed || l.fin_sent) {
      return;
    }
    ++l.breaks_pending;
    if (l.sending_breaks || l.writer_busy) {
      return;  // the running sender, or the write under way, sends it before its own bytes
    }
    try {
      l.sending_breaks = true;
      net::co_spawn(l.stream.get_executor(), send_breaks(link_), net::detached);
    } catch (const std::exception& e) {
      l.sending_breaks = false;
      log::warn("gateway", "break not sent: ", e.what());
    }
  }

 private:
  /// Waits until no break is being sent, then sends the queued ones: a break goes ahead of the
  /// bytes written after it, and never inside another message.
  net::awaitable<error_code> take_writer() {
    link& l = *link_;
    l.writer_busy = true;
    while (l.sending_breaks && !l.closed) {
      l.writer_free.expires_at(net::steady_timer::time_point::max());
      co_await l.writer_free.async_wait(use_ec);
    }
    if (l.closed) {
      l.writer_busy = false;
      co_return error_code(net::error::operation_aborted);
    }
    while (l.breaks_pending > 0) {
      --l.breaks_pending;
      if (const error_code ec = co_await l.channel.write_control(control_op::break_query); ec) {
        l.writer_busy = false;
        co_return ec;
      }
    }
    co_return error_code{};
  }

  std::shared_ptr<link> link_;
};

}  // namespace

std::string upgrade_target(const websocket_options& options, const tunnel_request& what, const request_style& style) {
  std::string target = style.absolute_form ? "http://" + style.authority + options.path : options.path;
  target += what.udp ? "?udp=1" : "?target=" + percent_encode(what.target);
  return target;
}

outcome outcome_of_upgrade_status(unsigned status) noexcept {
  switch (status) {
    case 400: return outcome::malformed;
    case 401: return outcome::bad_credentials;
    case 403: return outcome::denied;
    case 502: return outcome::host_unreachable;
    case 504: return outcome::connect_timeout;
    default: return outcome::general_failure;
  }
}

websocket_transport::websocket_transport(websocket_options options) : options_(std::move(options)) {}

net::awaitable<opened_tunnel> websocket_transport::open(const gateway_route& route, const tunnel_request& what,
                                                        phase_deadline& dl) const {
  route_connection conn = co_await route.connect(dl);
  if (conn.result != outcome::success || !conn.stream) {
    co_return opened_tunnel{.result = conn.result == outcome::success ? outcome::general_failure : conn.result,
                            .leg = nullptr,
                            .failed_hop = conn.failed_hop,
                            .detail = conn.detail};
  }
  auto l = std::make_shared<link>(std::move(*conn.stream), options_);
  std::vector<std::pair<std::string, std::string>> headers{
      {"Sec-WebSocket-Protocol", std::string(websocket_subprotocol)}};
  if (!what.authorization.empty()) {
    headers.emplace_back("Authorization", what.authorization);
  }
  if (conn.style.absolute_form && !conn.style.proxy_authorization.empty()) {
    headers.emplace_back("Proxy-Authorization", conn.style.proxy_authorization);
  }
  const handshake_answer answer = co_await l->channel.handshake(
      conn.style.authority, upgrade_target(options_, what, conn.style), std::move(headers), dl.slot());
  opened_tunnel out;
  out.failed_hop = "upgrade";
  if (answer.ec) {
    if (dl.expired()) {
      out.result = outcome::connect_timeout;
      out.detail = "no answer to the upgrade in time";
    } else if (answer.status != 0 && answer.status != 101) {
      out.result = outcome_of_upgrade_status(answer.status);
      std::string body = answer.body;
      while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
      out.detail = concat("status ", answer.status, body.empty() ? "" : ": ", body);
    } else {
      out.result = outcome::general_failure;
      out.detail = concat("upgrade failed: ", answer.ec.message());
    }
    l->end();
    co_return out;
  }
  if (!answer.subprotocol.empty() && answer.subprotocol != websocket_subprotocol) {
    out.result = outcome::general_failure;
    out.detail = concat("the gateway chose subprotocol '", answer.subprotocol, "', not ", websocket_subprotocol);
    l->end();
    co_return out;
  }
  out.result = outcome::success;
  out.failed_hop.clear();
  out.leg = std::make_unique<websocket_gateway_leg>(std::move(l), options_);
  co_return out;
}

}  // namespace edgerelay::proxy::gateway
