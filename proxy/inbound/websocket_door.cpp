// The WebSocket door: upgrade checks, credentials, target, and the client leg over Beast's
// websocket (proxy/outbound/gateway/websocket_wire.hpp).
#include "proxy/inbound/websocket_door.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include <boost/system/errc.hpp>

#include "proxy/inbound/credentials.hpp"
#include "proxy/inbound/linger_close.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/outbound/gateway/websocket_wire.hpp"
#include "tunnel/basic_auth.hpp"
#include "tunnel/polling_codec.hpp"  // percent_decode: both doors read the same query syntax

namespace edgerelay::proxy {
namespace {

using gateway::close_code;
using gateway::control_op;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// True when the comma-separated `list` holds `token` (ASCII case-insensitive).
bool list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

/// Every value of the fields named `name`, joined as one list (RFC 9110 section 5.3).
std::string joined_field(const tunnel::request_head& head, std::string_view name, std::size_t* count = nullptr) {
  std::string out;
  std::size_t n = 0;
  for (const auto& f : head.fields) {
    if (!iequals(f.name, name)) continue;
    ++n;
    if (!out.empty()) out += ", ";
    out += f.value;
  }
  if (count != nullptr) *count = n;
  return out;
}

websocket_refusal refuse(unsigned status, std::string reason, outcome why = outcome::malformed) {
  return websocket_refusal{.status = status, .why = why, .reason = std::move(reason)};
}

/// The client side of a WebSocket session (door_leg): 101 or the refusal, then the stream.
class websocket_door_leg final : public door_leg {
 public:
  websocket_door_leg(tunnel::client_stream& client, tunnel::request_head head, std::string subprotocol,
                     const session_context& ctx, std::string peer)
      : client_(client),
        head_(std::move(head)),
        subprotocol_(std::move(subprotocol)),
        handshake_timeout_(ctx.snapshot->cfg.limits.handshake_timeout),
        channel_(client, handshake_timeout_),
        peer_(std::move(peer)) {}

  net::awaitable<bool> answer(outcome result, phase_deadline& dl) override {
    if (result == outcome::success) {
      dl.start(handshake_timeout_);
      const error_code ec = co_await channel_.accept(head_, subprotocol_, dl.slot());
      head_ = {};
      co_return !ec;
    }
    const unsigned status = websocket_status(result);
    const std::string reason = concat(to_string(result));
    co_await reply_and_close(client_, websocket_error_reply(status, result, reason), dl, handshake_timeout_);
    done_ = true;  // the refusal was the last word
    co_return false;
  }

  net::awaitable<std::pair<error_code, std::size_t>> read_some(net::mutable_buffer into,
                                                               net::cancellation_slot cancel_slot) override {
    for (;;) {
      if (peer_fin_) {
        co_return std::pair{error_code(net::error::eof), std::size_t{0}};
      }
      reading_ = true;
      const gateway::channel_read r = co_await channel_.read(into, cancel_slot);
      reading_ = false;
      if (r.ec) {
        if (r.ec == net::error::eof) {
          done_ = true;  // a close frame: Beast answered it and tore the connection down
          peer_fin_ = true;
        }
        co_return std::pair{r.ec, std::size_t{0}};
      }
      if (!r.control) {
        co_return std::pair{error_code{}, r.n};
      }
      switch (*r.control) {
        case control_op::fin:
          peer_fin_ = true;
          if (fin_sent_) {
            co_await finish();
          }
          continue;
        case control_op::break_query: breaks_.forward("websocket", peer_); continue;
        case control_op::unknown:
        case control_op::malformed:
          co_await channel_.close(close_code::policy_violation, *r.control == control_op::unknown
                                                                    ? "unknown control op"
                                                                    : "malformed control message");
          done_ = true;
          co_return std::pair{make_error_code(boost::system::errc::protocol_error), std::size_t{0}};
      }
    }
  }

  net::awaitable<std::pair<error_code, std::size_t>> write(net::const_buffer bytes,
                                                           net::cancellation_slot cancel_slot) override {
    auto result = co_await channel_.write_bytes(bytes, cancel_slot);
    torn_ = torn_ || result.first;
    co_return result;
  }

  net::awaitable<error_code> shutdown_send() override {
    const error_code ec = co_await channel_.write_control(control_op::fin);
    torn_ = torn_ || ec;
    fin_sent_ = true;
    if (!ec && peer_fin_) {
      co_await finish();
    }
    co_return ec;
  }

  void cancel(error_code& ec) noexcept override { channel_.cancel(ec); }

  void carry_breaks(backend_hold* hold) noexcept override { breaks_.attach(hold); }

  void close() noexcept override {
    breaks_.attach(nullptr);
    if (closed_) return;
    closed_ = true;
    if (done_ || torn_ || channel_.writing() || client_.is_tls() || !client_.socket().is_open()) {
      // Nothing owed, or a close frame cannot go out without waiting: a TLS record, or a frame
      // that would land inside a half-written one. The connection just closes.
      return;
    }
    // Still reading: the gateway ends a live session (shutdown, reload recheck); else the
    // session failed (upstream reset, a deadline).
    const auto frame = gateway::server_close_frame(reading_ ? close_code::going_away : close_code::internal_error);
    error_code ec;
    client_.socket().non_blocking(true, ec);
    client_.socket().write_some(net::buffer(frame), ec);
  }

 private:
  net::awaitable<void> finish() {
    co_await channel_.close(close_code::normal, "");
    done_ = true;
  }

  tunnel::client_stream& client_;
  tunnel::request_head head_;
  std::string subprotocol_;
  std::chrono::milliseconds handshake_timeout_;
  gateway::ws_channel channel_;
  std::string peer_;
  bool reading_ = false;
  bool peer_fin_ = false;
  bool fin_sent_ = false;
  bool done_ = false;  ///< a close frame went both ways, or the refusal was sent
  bool torn_ = false;  ///< a write failed: a frame may be half on the wire
  bool closed_ = false;
  inband_breaks breaks_;
};

net::awaitable<door_result> refused(websocket_refusal r) {
  co_return door_closed{r.why, websocket_error_reply(r.status, r.why, r.reason)};
}

}  // namespace

bool is_websocket_upgrade(const tunnel::request_head& head) {
  return head.upgrade && list_has(*head.upgrade, "websocket");
}

std::variant<websocket_ask, websocket_refusal> check_websocket_upgrade(const tunnel::request_head& head,
                                                                       std::string_view path) {
  if (head.method != "GET") {
    return refuse(400, "a WebSocket upgrade is a GET request");
  }
  if (head.version != 11) {
    return refuse(400, "a WebSocket upgrade needs HTTP/1.1");
  }
  if (head.form != tunnel::target_form::origin && head.form != tunnel::target_form::absolute) {
    return refuse(400, "bad request-target");
  }
  const std::string_view full = head.path;
  const std::size_t question = full.find('?');
  if (full.substr(0, question) != path) {
    return refuse(404, "no WebSocket door at this path");
  }
  if (!head.connection || !list_has(*head.connection, "upgrade")) {
    return refuse(400, "a WebSocket upgrade needs Connection: upgrade");
  }
  std::size_t keys = 0;
  const std::string key = joined_field(head, "Sec-WebSocket-Key", &keys);
  if (keys != 1 || key.size() != 24 || key.substr(22) != "==") {
    return refuse(400, "a WebSocket upgrade needs one Sec-WebSocket-Key");
  }
  if (joined_field(head, "Sec-WebSocket-Version") != "13") {
    return refuse(426, "WebSocket version 13 only");
  }
  websocket_ask ask;
  std::size_t offers = 0;
  const std::string offered = joined_field(head, "Sec-WebSocket-Protocol", &offers);
  if (offers > 0) {
    if (!list_has(offered, gateway::websocket_subprotocol)) {
      return refuse(400, "subprotocol edgerelay.v1 not offered");
    }
    ask.subprotocol = std::string(gateway::websocket_subprotocol);
  }
  std::size_t authorizations = 0;
  std::string authorization = joined_field(head, "Authorization", &authorizations);
  if (authorizations > 1) {
    return refuse(400, "more than one Authorization");
  }
  if (authorizations == 1) {
    ask.authorization = std::move(authorization);
  }
  bool has_target = false;
  std::string_view query = question == std::string_view::npos ? std::string_view() : full.substr(question + 1);
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = param.find('=');
    const std::string_view name = param.substr(0, eq);
    const std::string_view raw = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (name == "target") {
      if (has_target) return refuse(400, "target given twice");
      std::optional<std::string> value = tunnel::percent_decode(raw);
      if (!value || value->empty()) return refuse(400, "bad target");
      ask.target = std::move(*value);
      has_target = true;
    } else if (name == "udp") {
      if (raw != "1") return refuse(400, "udp takes the value 1");
      ask.udp = true;
    }
  }
  if (ask.udp && has_target) {
    return refuse(400, "udp=1 takes no target");
  }
  if (!ask.udp && !has_target) {
    return refuse(400, "missing target");
  }
  return ask;
}

unsigned websocket_status(outcome o) noexcept {
  switch (o) {
    case outcome::success: return 101;
    case outcome::bad_credentials: return 401;
    case outcome::command_not_supported: return 501;
    default: break;
  }
  const unsigned status = to_http_status(o);
  return status == 405 || status == 407 ? 400 : status;
}

std::vector<std::uint8_t> websocket_error_reply(unsigned status, outcome why, std::string_view reason) {
  std::string_view phrase = tunnel::reason_phrase(status);
  if (status == 401) phrase = "Unauthorized";
  if (status == 426) phrase = "Upgrade Required";
  const std::string body = concat(reason, "\n");
  std::string head =
      concat("HTTP/1.1 ", status, ' ', phrase,
             "\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\nEdgerelay-Result: ", to_string(why),
             "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n");
  if (status == 401) head += "WWW-Authenticate: Basic realm=\"edgerelay\"\r\n";
  if (status == 426) head += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
  head += "\r\n";
  head += body;
  return std::vector<std::uint8_t>(head.begin(), head.end());
}

net::awaitable<door_result> open_websocket(const session_context& ctx, tunnel::client_stream& client,
                                           tunnel::request_head head, std::span<const std::uint8_t> leftover,
                                           access_record& rec, phase_deadline& dl) {
  (void)dl;  // the credential check runs on the verification pool, bounded by the handshake phase
  rec.protocol = "websocket";
  auto checked = check_websocket_upgrade(head, ctx.listener->websocket_path);
  if (auto* no = std::get_if<websocket_refusal>(&checked)) {
    co_return co_await refused(std::move(*no));
  }
  websocket_ask& ask = std::get<websocket_ask>(checked);
  rec.target = ask.udp ? "udp" : ask.target;
  if (!leftover.empty()) {
    // RFC 6455 section 4.1: a client waits for the 101 before it sends frames.
    co_return co_await refused(refuse(400, "bytes sent before the 101"));
  }
  if (!rec.user_from_certificate && ctx.listener->auth == config::auth_mode::password) {
    const auto parsed = ask.authorization ? tunnel::parse_basic_auth(*ask.authorization)
                                          : tunnel::basic_auth_result{tunnel::basic_auth_error::not_basic};
    const auto* creds = std::get_if<tunnel::credentials>(&parsed);
    bool authorized = false;
    if (creds != nullptr) {
      record_claimed_user(rec, creds->user);
      authorized = co_await check_credentials(ctx, creds->user, creds->password, rec);
    }
    if (!authorized) {
      co_return co_await refused(refuse(401, "credentials needed (Authorization: Basic)", outcome::bad_credentials));
    }
  }
  if (ask.udp) {
    co_return co_await refused(
        refuse(501, "UDP over WebSocket is not supported by this gateway", outcome::command_not_supported));
  }
  request r;
  if (ask.target.starts_with("backend:")) {
    const config::backend_config* b = ctx.snapshot->find_backend(std::string_view(ask.target).substr(8));
    if (b == nullptr) {
      co_return co_await refused(refuse(400, "no such backend"));
    }
    r.where = backend_target(*b);
    rec.target = concat(b->name, ':', r.where.port);
  } else {
    const std::optional<tunnel::authority_target> a = tunnel::parse_authority(ask.target);
    if (!a) {
      co_return co_await refused(refuse(400, "bad target (expected host:port or backend:NAME)"));
    }
    r.where = from_authority(*a);
    rec.target = tunnel::to_string(*a);
  }
  r.client_leg =
      std::make_unique<websocket_door_leg>(client, std::move(head), std::move(ask.subprotocol), ctx, rec.client);
  co_return r;
}

}  // namespace edgerelay::proxy
