// The session pipeline: detect -> handshake -> decide -> dial -> reply -> relay -> access log.
//
// The handshake runs in short-lived coroutines under their deadlines, so their frames (parser,
// read buffer) are gone before the long relay starts; an idle tunnel keeps only this frame and
// the relay operation.
#include "proxy/session/session.hpp"

#include <array>
#include <optional>
#include <span>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>

#include "config/address.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/outbound/backend_kind.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/relay/relay_pools.hpp"
#include "proxy/session/session_registry.hpp"
#include "proxy/observe/tls_failures.hpp"
#include "config/password.hpp"
#include "proxy/inbound/credentials.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/inbound/detect.hpp"
#include "proxy/inbound/http_serve.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/relay/stream_relay.hpp"
#include "proxy/inbound/udp_associate.hpp"
#include "socks/server.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::proxy {
namespace {

using tunnel::client_stream;

bool listener_speaks(const config::listener_config& l, config::protocol p) {
  return std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end();
}

/// The outcome a closing SOCKS reply stands for (auth status, method refusal or error reply).
outcome outcome_of_closing_reply(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() == 8 && bytes[0] == 0x00) {  // SOCKS4 reply
    return bytes[1] == static_cast<std::uint8_t>(socks::socks4_reply::bad_user) ? outcome::bad_credentials
                                                                                : outcome::malformed;
  }
  if (bytes.size() == 2) {  // method selection 05 FF, or RFC 1929 status 01 01
    return outcome::bad_credentials;
  }
  if (bytes.size() >= 2 && bytes[0] == socks::socks5_version) {
    switch (static_cast<socks::reply_code>(bytes[1])) {
      case socks::reply_code::command_not_supported: return outcome::command_not_supported;
      case socks::reply_code::address_type_not_supported: return outcome::address_type_not_supported;
      default: return outcome::malformed;
    }
  }
  return outcome::malformed;
}

/// The protocol state of one client handshake; lives in front_end's frame, gone before the relay.
struct handshake_state {
  explicit handshake_state(socks::server_options options) : socks(options) {}
  detected kind = detected::unknown;
  socks::socks_server socks;
  std::optional<tunnel::request_head_reader> http;
  socks::command cmd = socks::command::connect;
  std::optional<target> where;                       ///< set when the client asked for a destination
  std::optional<tunnel::request_head> http_request;  ///< a non-CONNECT request, for serve_http()
  outcome failure = outcome::malformed;
};

outcome outcome_of_http_status(unsigned status) {
  switch (status) {
    case 405: return outcome::command_not_supported;
    case 407: return outcome::bad_credentials;
    case 403: return outcome::denied;
    default: return outcome::malformed;
  }
}

net::awaitable<void> negotiate_socks(client_stream& client, std::span<const std::uint8_t> first, handshake_state& hs,
                                     const session_context& ctx, access_record& rec, phase_deadline& dl) {
  std::array<std::uint8_t, 2048> buf;
  socks::step_t step = hs.socks.feed(first);
  for (;;) {
    if (std::holds_alternative<socks::step::need_more>(step)) {
      auto [ec, got] = co_await client.async_read_some(net::buffer(buf), dl.token());
      if (ec || got == 0) co_return;
      step = hs.socks.feed(std::span<const std::uint8_t>(buf.data(), got));
    } else if (auto* send = std::get_if<socks::step::send>(&step)) {
      auto [ec, written] = co_await net::async_write(client, net::buffer(send->bytes), dl.token());
      if (ec || send->close_after) {
        hs.failure = ec ? outcome::general_failure : outcome_of_closing_reply(send->bytes);
        co_return;
      }
      step = hs.socks.feed({});
    } else if (auto* auth = std::get_if<socks::step::authenticate>(&step)) {
      const bool ok = co_await check_credentials(ctx, auth->user, auth->password, rec);
      record_claimed_user(rec, auth->user);
      step = hs.socks.on_auth(ok);
    } else if (auto* req = std::get_if<socks::step::connect>(&step)) {
      rec.target = socks::to_string(req->target);
      if (hs.socks.protocol_version() == socks::version::v4) {
        rec.claimed_user = req->user;  // a USERID proves nothing: only real logins may match `users`
      }
      hs.cmd = req->cmd;
      hs.where = from_socks(req->target);
      co_return;
    } else {
      co_return;  // failed: nothing can be replied
    }
  }
}

/// HTTP CONNECT (and the refusals of everything else this listener does not serve).
net::awaitable<void> negotiate_http(client_stream& client, std::span<const std::uint8_t> first, handshake_state& hs,
                                    const session_context& ctx, access_record& rec, phase_deadline& dl) {
  std::array<std::uint8_t, 4096> buf;
  auto& reader = hs.http.emplace();
  tunnel::head_result result = reader.feed(first);
  while (std::holds_alternative<tunnel::need_more>(result)) {
    auto [ec, got] = co_await client.async_read_some(net::buffer(buf), dl.token());
    if (ec || got == 0) co_return;
    result = reader.feed(std::span<const std::uint8_t>(buf.data(), got));
  }
  std::vector<std::uint8_t> refusal;
  if (auto* err = std::get_if<tunnel::http_error>(&result)) {
    hs.failure = outcome_of_http_status(err->status);
    refusal = std::move(err->reply);
  } else {
    const tunnel::request_head& head = std::get<tunnel::parsed<tunnel::request_head>>(result).value;
    rec.target = head.target;
    if (!head.is_connect()) {
      // Forward proxying, the 602SQL tunnel or the fallback: serve_http() takes the connection over.
      hs.http_request = std::move(std::get<tunnel::parsed<tunnel::request_head>>(result).value);
      co_return;
    }
    if (!co_await http_proxy_authorized(ctx, head, rec)) {
      hs.failure = outcome::bad_credentials;
      refusal = tunnel::error_reply(407);
    }
    if (refusal.empty()) {
      target t;
      error_code ec;
      const auto address = net::ip::make_address(head.authority.host, ec);
      if (ec) {
        t.host = head.authority.host;
      } else {
        t.address = address;
      }
      t.port = head.authority.port;
      rec.target = tunnel::to_string(head.authority);
      hs.where = std::move(t);
      co_return;
    }
  }
  co_await net::async_write(client, net::buffer(refusal), dl.token());
}

/// The TLS server handshake on `client`, fed `first` (the bytes detection already read), under the
/// handshake deadline. Records what was negotiated, or why it failed, in `rec`.
net::awaitable<bool> accept_tls(client_stream& client, net::ssl::context& tls, std::span<const std::uint8_t> first,
                                handshake_state& hs, const session_context& ctx, access_record& rec,
                                phase_deadline& dl) {
  if (const error_code ec = co_await client.start_tls(tls, first, dl.slot())) {
    hs.failure = outcome::tls_failed;
    rec.tls_error = dl.expired() ? "handshake timeout" : tunnel::tls_failure_reason(client.ssl(), ec);
    ctx.services->tls_failures->record(ctx.listener->name, rec.client, rec.tls_error);
    co_return false;
  }
  tunnel::tls_info info = tunnel::negotiated(client.ssl());
  rec.tls_version = std::move(info.version);
  rec.sni = std::move(info.server_name);
  if (std::string identity = tunnel::peer_identity(client.ssl()); !identity.empty()) {
    rec.user = std::move(identity);
    rec.user_from_certificate = true;
  }
  co_return true;
}

/// Reads the client's first bytes, detects its protocol (inside TLS when they start a TLS
/// handshake on a TLS listener) and runs that handshake up to the point where a destination is
/// known (or the client was refused).
net::awaitable<void> negotiate(client_stream& client, handshake_state& hs, const session_context& ctx,
                               access_record& rec, phase_deadline& dl) {
  std::array<std::uint8_t, 2048> buf;
  auto [ec, n] = co_await client.async_read_some(net::buffer(buf), dl.token());
  if (ec || n == 0) {
    co_return;
  }
  std::span<const std::uint8_t> first(buf.data(), n);
  hs.kind = detect_protocol(first);
  const config::listener_config& l = *ctx.listener;
  if (net::ssl::context* tls = ctx.snapshot->tls_of(l)) {
    if (hs.kind == detected::tls) {
      if (!co_await accept_tls(client, *tls, first, hs, ctx, rec, dl)) {
        rec.protocol = "tls";
        co_return;
      }
      auto [inner_ec, inner_n] = co_await client.async_read_some(net::buffer(buf), dl.token());
      if (inner_ec || inner_n == 0) {
        co_return;
      }
      first = std::span<const std::uint8_t>(buf.data(), inner_n);
      hs.kind = detect_protocol(first);
    } else if (l.tls->required) {
      hs.failure = outcome::tls_required;
      co_return;
    }
  }
  switch (hs.kind) {
    case detected::socks5:
    case detected::socks4:
      rec.protocol = hs.kind == detected::socks5 ? "socks5" : "socks4";
      if (listener_speaks(l, hs.kind == detected::socks5 ? config::protocol::socks5 : config::protocol::socks4)) {
        co_await negotiate_socks(client, first, hs, ctx, rec, dl);
      }
      break;
    case detected::http:
      rec.protocol = "http";
      if (listener_speaks(l, config::protocol::http)) {
        co_await negotiate_http(client, first, hs, ctx, rec, dl);
      }
      break;
    case detected::tls: rec.protocol = "tls"; break;
    default: break;
  }
}

socks::bound_address bound_of(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.local_endpoint(ec);
  socks::bound_address b;
  if (ec) {
    return b;
  }
  b.port = ep.port();
  const auto a = ep.address();
  if (a.is_v4()) {
    b.host = a.to_v4().to_bytes();
  } else if (a.to_v6().is_v4_mapped()) {
    b.host = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).to_bytes();
  } else {
    b.host = a.to_v6().to_bytes();
  }
  return b;
}

/// The reply that tells the client how its request ended, in its own protocol.
std::vector<std::uint8_t> final_reply(handshake_state& hs, outcome result, const socks::bound_address& bound) {
  if (hs.kind == detected::http) {
    return result == outcome::success ? tunnel::connect_established_reply()
                                      : tunnel::error_reply(to_http_status(result));
  }
  auto reply = hs.socks.on_connect(to_socks5_reply(result), bound);
  if (auto* send = std::get_if<socks::step::send>(&reply)) {
    return std::move(send->bytes);
  }
  return {};
}

std::span<const std::uint8_t> leftover_of(const handshake_state& hs) {
  return hs.kind == detected::http ? hs.http->leftover() : hs.socks.leftover();
}

/// Everything before the relay, each phase under its deadline. On success `upstream` is connected
/// (and secured, for a TLS backend) and leftover client bytes have been delivered to it.
net::awaitable<bool> front_end(client_stream& client, client_stream& upstream, const session_context& ctx,
                               access_record& rec, session_identity& identity, std::unique_ptr<backend_hold>& hold,
                               phase_deadline& dl) {
  const config::listener_config& listener = *ctx.listener;
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  handshake_state hs(socks::server_options{
      .accept_socks5 = listener_speaks(listener, config::protocol::socks5),
      .accept_socks4 = listener_speaks(listener, config::protocol::socks4),
      .require_password = listener.auth == config::auth_mode::password,
  });

  const config::backend_config* forward_to = ctx.snapshot->find_backend(listener.forward);
  if (forward_to != nullptr) {
    // A forward door: no handshake, every session goes to the backend once the rules allow it.
    rec.protocol = "forward";
    if (net::ssl::context* tls = ctx.snapshot->tls_of(listener)) {
      // Always TLS: the server of a forward door may speak first, so waiting for the client's
      // first byte to tell TLS from plaintext could wait forever.
      dl.start(limits.handshake_timeout);
      if (!co_await accept_tls(client, *tls, {}, hs, ctx, rec, dl)) {
        rec.result = dl.expired() ? outcome::handshake_timeout : hs.failure;
        co_return false;
      }
    } else {
      error_code ignored;
      client.socket().non_blocking(true, ignored);  // no handshake read made it so; the relay needs it
    }
    hs.where = backend_target(*forward_to);
    rec.target = concat(forward_to->name, ':', hs.where->port);
  } else {
    dl.start(limits.handshake_timeout);
    co_await negotiate(client, hs, ctx, rec, dl);
    if (dl.expired()) {
      rec.result = outcome::handshake_timeout;
      co_return false;
    }
  }
  if (hs.http_request) {
    // serve_http() applies its own deadlines, per request.
    dl.stop();
    const auto leftover = leftover_of(hs);
    co_await serve_http(client, std::move(*hs.http_request),
                        std::vector<std::uint8_t>(leftover.begin(), leftover.end()), ctx, rec);
    co_return false;
  }
  if (!hs.where) {
    rec.result = hs.failure;
    co_return false;
  }

  if (hs.cmd == socks::command::udp_associate && hs.socks.protocol_version() == socks::version::v5) {
    // The association takes the connection over; it applies its own deadlines, per datagram.
    co_await serve_udp_associate(client, hs.socks, *hs.where, ctx, rec, dl);
    co_return false;
  }
  if (hs.cmd != socks::command::connect) {
    rec.result = outcome::command_not_supported;
    const std::vector<std::uint8_t> reply = final_reply(hs, rec.result, {});
    co_await net::async_write(client, net::buffer(reply), dl.token());
    co_return false;
  }

  route_to_backend(ctx.snapshot->cfg, *hs.where);
  const dial_identity who{to_config_address(ctx.peer.address()), rec.user, listener.name};
  const config::backend_config* backend = hs.where->backend;
  dial_options opts;
  std::optional<backend_session> backend_of_session;
  if (backend != nullptr) {
    backend_of_session.emplace(backend_session{*backend, who.source, rec.client, listener.name});
    opts.backend_down = ctx.services->health != nullptr && ctx.services->health->is_down(backend->name);
    if (!opts.backend_down) {
      hold = ctx.services->kinds->of(backend->kind).before_dial(*backend_of_session, opts);
    }
  }
  dl.start(limits.connect_timeout);
  dial_result dialled = co_await dial(ctx.snapshot->pol, who, *hs.where, dl, opts);
  outcome result = record_dial(rec, dl.expired() ? nullptr : &dialled);
  if (opts.backend_down && result == outcome::host_unreachable) {
    rec.detail = "backend_down";
  }
  if (result == outcome::success) {
    upstream = client_stream(std::move(*dialled.socket));
    result = co_await secure_backend(upstream, backend, *ctx.snapshot, rec, dl.slot());
  }
  if (result == outcome::success) {
    identity = identity_of(who, *hs.where, dialled.dialled);
    if (backend_of_session) {
      error_code ec;
      const auto local = upstream.socket().local_endpoint(ec);
      if (!ec) {
        ctx.services->kinds->of(backend->kind)
            .on_connected(*backend_of_session, to_config_address(local.address()), hold.get());
      }
    }
  }

  if (forward_to == nullptr) {
    dl.start(limits.handshake_timeout);
    const socks::bound_address bound =
        result == outcome::success ? bound_of(upstream.socket()) : socks::bound_address{};
    const std::vector<std::uint8_t> reply = final_reply(hs, result, bound);
    if (reply.empty()) {
      rec.result = outcome::general_failure;
      co_return false;
    }
    auto [ec, written] = co_await net::async_write(client, net::buffer(reply), dl.token());
    if (result == outcome::success && ec) {
      rec.result = outcome::general_failure;
      rec.detail = "client_gone";
      co_return false;
    }
  }
  if (result != outcome::success) {
    if (forward_to != nullptr) {
      const std::vector<std::uint8_t> refusal = ctx.services->kinds->of(forward_to->kind).door_refusal(result);
      if (!refusal.empty()) {
        dl.start(limits.handshake_timeout);
        co_await net::async_write(client, net::buffer(refusal), dl.token());
      }
    }
    co_return false;
  }
  const auto leftover = leftover_of(hs);
  if (!leftover.empty()) {
    rec.bytes_up += leftover.size();
    dl.start(limits.idle_timeout);
    auto [ec, written] = co_await net::async_write(upstream, net::buffer(leftover.data(), leftover.size()), dl.token());
    if (ec) {
      rec.detail = "upstream_gone";
      co_return false;
    }
  }
  dl.stop();
  co_return true;
}

/// front_end() with its deadline in this short-lived frame, so an idle tunnel keeps no timer for
/// phases that are over.
net::awaitable<bool> run_front_end(client_stream& client, client_stream& upstream, const session_context& ctx,
                                   access_record& rec, session_identity& identity,
                                   std::unique_ptr<backend_hold>& hold) {
  phase_deadline deadline(client.get_executor());
  std::exception_ptr failure;
  bool established = false;
  try {
    established = co_await front_end(client, upstream, ctx, rec, identity, hold, deadline);
  } catch (...) {
    failure = std::current_exception();
  }
  co_await deadline.settle();  // no timer handler may outlive `deadline`
  if (failure) {
    std::rethrow_exception(failure);
  }
  co_return established;
}

}  // namespace

net::awaitable<void> run_session(tcp::socket socket, session_context ctx) {
  access_record rec;
  rec.listener = ctx.listener->name;
  rec.client = to_string(ctx.peer);
  client_stream upstream(tcp::socket(socket.get_executor()));
  client_stream client(std::move(socket));
  session_identity identity;
  ctx.identity = &identity;
  session_registry::entry registered(*ctx.services->registry, client, upstream, rec, identity);
  std::unique_ptr<backend_hold> hold;
  try {
    if (co_await run_front_end(client, upstream, ctx, rec, identity, hold)) {
      const config::limits_config& limits = ctx.snapshot->cfg.limits;
      const relay_options opts{
          .idle_timeout = limits.idle_timeout, .fin_timeout = limits.fin_timeout, .use_splice = true};
      const relay_result r =
          co_await async_relay_streams(client, upstream, *ctx.services->pools, opts, net::use_awaitable);
      rec.bytes_up += r.bytes_up;
      rec.bytes_down += r.bytes_down;
      if (r.end != relay_end::closed && rec.detail.empty()) {
        rec.detail = to_string(r.end);
      }
    }
  } catch (const std::exception& e) {
    rec.result = outcome::general_failure;
    log::error("session", "session from ", rec.client, " failed: ", e.what());
  }
  client.close();
  upstream.close();
  if (ctx.snapshot->cfg.log.access_json) {
    write_access_line(rec);
  }
}

}  // namespace edgerelay::proxy
