// SOCKS5 BIND: decide, listen, first reply, accept the expected peer, second reply.
#include "proxy/session/bind_session.hpp"

#include <utility>
#include <vector>

#include <boost/asio/write.hpp>

#include "proxy/core/endpoint.hpp"
#include "proxy/inbound/linger_close.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/bind_accept.hpp"
#include "socks/server.hpp"

namespace edgerelay::proxy {
namespace {

/// Ends the BIND with `result`'s reply (the first or the second one: both are a SOCKS5 reply),
/// lingering so the client reads it.
net::awaitable<bool> refuse(tunnel::client_stream& client, front_door& door, outcome result, const session_context& ctx,
                            access_record& rec, phase_deadline& dl) {
  rec.result = result;
  socks::step_t reply = door.socks().on_connect(to_socks5_reply(result), socks::bound_address{});
  std::vector<std::uint8_t> bytes;
  if (auto* send = std::get_if<socks::step::send>(&reply)) {
    bytes = std::move(send->bytes);
  }
  co_await reply_and_close(client, std::move(bytes), dl, ctx.snapshot->cfg.limits.handshake_timeout);
  co_return false;
}

/// Writes one of the BIND's success replies under the handshake timeout.
net::awaitable<bool> send_reply(tunnel::client_stream& client, socks::step_t reply, const session_context& ctx,
                                access_record& rec, phase_deadline& dl) {
  auto* send = std::get_if<socks::step::send>(&reply);
  if (send == nullptr) {
    rec.result = outcome::general_failure;
    co_return false;
  }
  dl.start(ctx.snapshot->cfg.limits.handshake_timeout);
  auto [ec, written] = co_await net::async_write(client, net::buffer(send->bytes), dl.token());
  if (ec) {
    rec.result = outcome::general_failure;
    rec.detail = "client_gone";
  }
  co_return !ec;
}

}  // namespace

net::awaitable<bool> serve_bind(tunnel::client_stream& client, tunnel::client_stream& upstream, front_door& door,
                                const target& expected, const session_context& ctx, access_record& rec,
                                session_identity& identity, phase_deadline& dl) {
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  rec.command = "bind";
  if (!ctx.listener->socks5_bind) {
    rec.detail = "bind_disabled";
    co_return co_await refuse(client, door, outcome::denied, ctx, rec, dl);
  }
  const dial_identity who{to_config_address(ctx.peer.address()), rec.user, ctx.listener->name};
  dl.start(limits.connect_timeout);
  bind_offer offer = co_await open_bind(ctx.snapshot->pol, who, expected, dl);
  rec.rule = offer.rule;
  if (offer.result != outcome::success) {
    const outcome result = dl.expired() ? outcome::connect_timeout : offer.result;
    co_return co_await refuse(client, door, result, ctx, rec, dl);
  }
  // From here a reload's recheck decides this BIND again and, when now denied, closes the client,
  // which ends the wait below as well as a relay.
  identity = identity_of(who, expected, tcp::endpoint(*offer.expected, expected.port));
  log::debug("bind", "session from ", rec.client, " listens on ", to_string(offer.listening), " for ",
             offer.expected->to_string());
  if (!co_await send_reply(client, door.socks().on_bind_listening(socks_bound_address(offer.listening)), ctx, rec,
                           dl)) {
    co_return false;
  }

  dl.start(limits.bind_timeout);
  bind_peer peer = co_await accept_expected(*offer.acceptor, *offer.expected, client.socket(), dl);
  offer.acceptor.reset();  // one peer per BIND: the port closes now
  if (peer.result != outcome::success) {
    if (peer.client_gone) {
      rec.result = outcome::general_failure;
      rec.detail = "client_gone";
      co_return false;
    }
    if (peer.result == outcome::connect_timeout) {
      rec.detail = "bind_timeout";
    }
    co_return co_await refuse(client, door, peer.result, ctx, rec, dl);
  }
  rec.dialled = to_string(peer.from);
  upstream = tunnel::client_stream(std::move(*peer.socket));
  if (!co_await send_reply(client,
                           door.socks().on_connect(socks::reply_code::succeeded, socks_bound_address(peer.from)), ctx,
                           rec, dl)) {
    co_return false;
  }
  rec.result = outcome::success;
  co_return true;
}

}  // namespace edgerelay::proxy
