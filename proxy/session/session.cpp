// The session pipeline: door -> request -> decide and dial (a dial plan) -> reply -> relay ->
// access record.
//
// Everything before the relay runs in a short-lived coroutine under one phase deadline, so its
// frame (the door's parser, the read buffers) is gone before the long relay starts; an idle
// tunnel keeps only run_session's frame and the relay operation.
#include "proxy/session/session.hpp"

#include <exception>
#include <memory>
#include <span>
#include <vector>

#include <boost/asio/write.hpp>

#include "proxy/core/phase_deadline.hpp"
#include "proxy/inbound/door.hpp"
#include "proxy/inbound/http_serve.hpp"
#include "proxy/inbound/linger_close.hpp"
#include "proxy/inbound/proxy_header.hpp"
#include "proxy/inbound/udp_associate.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/observe/metrics.hpp"
#include "proxy/outbound/backend_kind.hpp"
#include "proxy/outbound/dial_plan.hpp"
#include "proxy/relay/relay_pools.hpp"
#include "proxy/relay/stream_relay.hpp"
#include "proxy/session/bind_session.hpp"
#include "proxy/session/session_registry.hpp"

namespace edgerelay::proxy {
namespace {

using tunnel::client_stream;

/// What a session holds from its pre-relay phases for the rest of its life.
struct established {
  session_identity& identity;
  std::unique_ptr<backend_hold>& hold;
  std::unique_ptr<door_leg>& client_leg;       ///< a tunnel door's client side
  std::unique_ptr<message_leg>& upstream_leg;  ///< a plan's upstream that travels in messages
};

/// Tells the client how its request ended, under the handshake timeout. False when the session
/// ends here (a refusal, a failure, a reply the protocol owed but could not make, or a client
/// gone); a refusal lingers before the close, so the client reads it.
net::awaitable<bool> answer_client(client_stream& client, front_door& door, outcome result, client_stream* upstream,
                                   const session_context& ctx, access_record& rec, phase_deadline& dl) {
  door_reply reply = door.answer(result, upstream != nullptr ? &upstream->socket() : nullptr);
  if (reply.bytes.empty()) {
    if (reply.owed) {
      rec.result = outcome::general_failure;
      co_return false;
    }
    co_return result == outcome::success;
  }
  if (result != outcome::success) {
    co_await reply_and_close(client, std::move(reply.bytes), dl, ctx.snapshot->cfg.limits.handshake_timeout);
    co_return false;
  }
  dl.start(ctx.snapshot->cfg.limits.handshake_timeout);
  auto [ec, written] = co_await net::async_write(client, net::buffer(reply.bytes), dl.token());
  if (ec) {
    rec.result = outcome::general_failure;
    rec.detail = "client_gone";
  }
  co_return !ec;
}

/// Delivers the client bytes that came behind the request to the new upstream (`upstream_leg`
/// when the plan gave one, else `upstream`).
net::awaitable<bool> flush_leftover(client_stream& upstream, message_leg* upstream_leg,
                                    std::span<const std::uint8_t> leftover, const session_context& ctx,
                                    access_record& rec, phase_deadline& dl) {
  if (leftover.empty()) {
    co_return true;
  }
  rec.bytes_up += leftover.size();
  dl.start(ctx.snapshot->cfg.limits.idle_timeout);
  error_code ec;
  if (upstream_leg != nullptr) {
    auto [leg_ec, written] = co_await upstream_leg->write(net::buffer(leftover.data(), leftover.size()), dl.slot());
    ec = leg_ec;
  } else {
    auto [stream_ec, written] =
        co_await net::async_write(upstream, net::buffer(leftover.data(), leftover.size()), dl.token());
    ec = stream_ec;
  }
  if (ec) {
    rec.detail = "upstream_gone";
  }
  co_return !ec;
}

/// Everything before the relay, each phase under the deadline. True when `upstream` is connected
/// (and secured, for a TLS backend), the client has its success reply and the leftover is delivered.
net::awaitable<bool> front_end(client_stream& client, client_stream& upstream, const session_context& ctx,
                               access_record& rec, established out, phase_deadline& dl) {
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  front_door door(ctx);
  dl.start(handshake_left(ctx));
  door_result opened = co_await door.open(client, rec, dl);
  if (auto* refused = std::get_if<door_closed>(&opened); refused != nullptr && !refused->refusal.empty()) {
    rec.result = refused->why;
    co_await reply_and_close(client, std::move(refused->refusal), dl, limits.handshake_timeout);
    co_return false;
  }
  if (dl.expired()) {
    rec.result = outcome::handshake_timeout;
    co_return false;
  }
  if (auto* http = std::get_if<http_handoff>(&opened)) {
    dl.stop();  // serve_http() applies its own deadlines, per request
    const auto leftover = door.leftover();
    co_await serve_http(client, std::move(http->head), std::vector<std::uint8_t>(leftover.begin(), leftover.end()), ctx,
                        rec);
    co_return false;
  }
  if (auto* udp = std::get_if<udp_handoff>(&opened)) {
    co_await serve_udp_associate(client, door.socks(), udp->client_said, ctx, rec, dl);
    co_return false;
  }
  if (auto* closed = std::get_if<door_closed>(&opened)) {
    rec.result = closed->why;
    co_return false;
  }
  request& req = std::get<request>(opened);
  rec.request_at = std::chrono::steady_clock::now();
  if (req.cmd == socks::command::bind && !req.client_leg && door.socks().protocol_version() == socks::version::v5) {
    // A dial plan that accepts instead of connecting, with a reply before the accept.
    if (!co_await serve_bind(client, upstream, door, req.where, ctx, rec, out.identity, dl)) {
      co_return false;
    }
    const bool delivered = co_await flush_leftover(upstream, nullptr, door.leftover(), ctx, rec, dl);
    dl.stop();
    co_return delivered;
  }
  if (req.cmd != socks::command::connect) {
    rec.result = outcome::command_not_supported;
    co_await answer_client(client, door, rec.result, nullptr, ctx, rec, dl);
    co_return false;
  }

  route_to_backend(ctx, req.where);
  const dial_identity who{to_config_address(ctx.peer.address()), rec.user, ctx.listener->name};
  dl.start(limits.connect_timeout);
  dialled_upstream dialled = co_await plan_for(ctx, req.where).dial(ctx, who, req.where, rec, dl);
  if (dialled.stream) {
    upstream = std::move(*dialled.stream);
    out.identity = dialled.identity;
  } else if (dialled.leg) {
    out.upstream_leg = std::move(dialled.leg);
    out.identity = dialled.identity;
  }
  out.hold = std::move(dialled.hold);
  if (req.client_leg) {
    // A tunnel door answers in its own protocol, and bytes behind its request are its own framing.
    out.client_leg = std::move(req.client_leg);
    out.client_leg->carry_breaks(out.hold.get());
    if (out.upstream_leg) {
      // Two message legs have no socket to relay between; configuration never makes them meet.
      dialled.result = outcome::general_failure;
      rec.detail = "message_legs_on_both_sides";
    }
    const bool answered = co_await out.client_leg->answer(dialled.result, dl);
    dl.stop();
    co_return answered&& dialled.result == outcome::success;
  }
  const bool socket_upstream = dialled.result == outcome::success && !out.upstream_leg;
  if (!co_await answer_client(client, door, dialled.result, socket_upstream ? &upstream : nullptr, ctx, rec, dl)) {
    co_return false;
  }
  const bool delivered = co_await flush_leftover(upstream, out.upstream_leg.get(), door.leftover(), ctx, rec, dl);
  dl.stop();
  co_return delivered;
}

/// front_end() with its deadline in this short-lived frame: the session's own frame, which an idle
/// tunnel keeps, then holds only this call's handle, no timer and no handshake state.
net::awaitable<bool> run_front_end(client_stream& client, client_stream& upstream, const session_context& ctx,
                                   access_record& rec, established out) {
  co_return co_await with_phase_deadline(
      client.get_executor(), [&](phase_deadline& dl) { return front_end(client, upstream, ctx, rec, out, dl); });
}

}  // namespace

net::awaitable<void> run_session(tcp::socket socket, session_context ctx) {
  access_record rec;
  rec.listener = ctx.listener->name;
  rec.client = to_string(ctx.peer);
  if (ctx.proxied != nullptr) record_proxied(*ctx.proxied, rec);
  client_stream upstream(tcp::socket(socket.get_executor()));
  client_stream client(std::move(socket));
  session_identity identity;
  ctx.identity = &identity;
  session_registry::entry registered(*ctx.services->registry, client, upstream, rec, identity);
  std::unique_ptr<backend_hold> hold;
  std::unique_ptr<door_leg> client_leg;
  std::unique_ptr<message_leg> upstream_leg;
  try {
    const bool established_ok =
        co_await run_front_end(client, upstream, ctx, rec, established{identity, hold, client_leg, upstream_leg});
    registered.attach(client_leg.get(), upstream_leg.get());
    if (established_ok) {
      const config::limits_config& limits = ctx.snapshot->cfg.limits;
      const relay_options opts{
          .idle_timeout = limits.idle_timeout, .fin_timeout = limits.fin_timeout, .use_splice = true};
      relay_result r;
      if (client_leg) {
        r = co_await async_relay_leg(upstream, *client_leg, true, opts, net::use_awaitable);
      } else if (upstream_leg) {
        r = co_await async_relay_leg(client, *upstream_leg, false, opts, net::use_awaitable);
      } else {
        r = co_await async_relay_streams(client, upstream, *ctx.services->pools, opts, net::use_awaitable);
      }
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
  registered.attach(nullptr, nullptr);
  if (client_leg) client_leg->close();
  if (upstream_leg) upstream_leg->close();
  client.close();
  upstream.close();
  if (rec.unlogged) co_return;
  if (ctx.services->metrics != nullptr) ctx.services->metrics->session_ended(rec);
  if (ctx.snapshot->cfg.log.access_json) {
    write_access_line(rec);
  }
}

}  // namespace edgerelay::proxy
