#include "proxy/outbound/dial_plan.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include <boost/asio/write.hpp>

#include "proxy/observe/log.hpp"
#include "proxy/outbound/chain_dial.hpp"
#include "tunnel/proxy_protocol_codec.hpp"

namespace edgerelay::proxy {
namespace {

tunnel::proxy_address proxy_address_of(const tcp::endpoint& ep) {
  tunnel::proxy_address a;
  a.port = ep.port();
  if (ep.address().is_v4()) {
    const auto b = ep.address().to_v4().to_bytes();
    std::copy(b.begin(), b.end(), a.bytes.begin());
  } else {
    a.v6 = true;
    a.bytes = ep.address().to_v6().to_bytes();
  }
  return a;
}

/// The session's client and what it connected to, in a PROXY v2 header (with the AUTHORITY a
/// balancer in front named, passed on).
std::vector<std::uint8_t> proxy_v2_header(const session_context& ctx) {
  tunnel::proxy_header h;
  h.proxied = true;
  h.source = proxy_address_of(ctx.peer);
  h.destination = proxy_address_of(ctx.local);
  if (ctx.proxied != nullptr) h.authority = ctx.proxied->authority;
  return tunnel::encode_proxy_v2(h);
}

}  // namespace

net::awaitable<dialled_upstream> direct_dial::dial(const session_context& ctx, const dial_identity& who,
                                                   const target& where, access_record& rec, phase_deadline& dl) const {
  dialled_upstream out;
  const config::backend_config* backend = where.backend;
  dial_options opts;
  std::optional<backend_session> session_of_backend;
  if (backend != nullptr) {
    session_of_backend.emplace(backend_session{*backend, who.source, rec.client, who.listener});
    opts.backend_down = ctx.services->health != nullptr && ctx.services->health->is_down(backend->name);
    if (!opts.backend_down) {
      out.hold = ctx.services->kinds->of(backend->kind).before_dial(*session_of_backend, opts);
    }
  }
  rec.dial_started = std::chrono::steady_clock::now();
  opts.routes = &ctx.snapshot->cfg;
  dial_result dialled = co_await proxy::dial(ctx.snapshot->pol, who, where, dl, opts);
  out.result = record_dial(rec, dl.expired() ? nullptr : &dialled);
  if (opts.backend_down && out.result == outcome::host_unreachable) {
    rec.detail = "backend_down";
  }
  if (out.result != outcome::success) {
    co_return out;
  }
  if (dialled.via) {
    // Through upstream proxies: the egress address and break registration of the backend kind
    // would name the gateway's side of the first hop, which the backend never sees.
    out.hold.reset();
    session_of_backend.reset();
    rec.via = dialled.via->upstream->name;
    chain_result chained = co_await dial_chain(
        *ctx.snapshot, ctx.services != nullptr ? ctx.services->upstreams : nullptr, *dialled.via, dl);
    if (chained.asked) rec.dialled = to_string(*chained.asked);
    if (!chained.stream) {
      out.result = dl.expired() ? outcome::connect_timeout : chained.result;
      rec.result = out.result;
      rec.via_hop = chained.failed_hop;
      rec.detail = chained.detail;
      rec.tls_error = chained.tls_error;
      log::info("upstream", "session from ", rec.client, " to ", rec.target, " via '", rec.via, "': hop '",
                chained.failed_hop, "' failed: ", chained.detail, chained.tls_error.empty() ? "" : " (",
                chained.tls_error, chained.tls_error.empty() ? "" : ")");
      co_return out;
    }
    out.stream.emplace(std::move(*chained.stream));
  } else {
    out.stream.emplace(std::move(*dialled.socket));
  }
  rec.connected_at = std::chrono::steady_clock::now();
  if (backend != nullptr && backend->send_proxy_v2) {
    // Before any other byte, TLS included: the backend reads who the client is, then the session.
    const std::vector<std::uint8_t> header = proxy_v2_header(ctx);
    auto [ec, written] = co_await net::async_write(out.stream->socket(), net::buffer(header), dl.token());
    if (ec) {
      rec.detail = "upstream_gone";
      out.stream.reset();
      out.result = outcome::general_failure;
      co_return out;
    }
  }
  out.result = co_await secure_backend(*out.stream, backend, *ctx.snapshot, rec, dl.slot());
  if (out.result != outcome::success) {
    out.stream.reset();
    co_return out;
  }
  out.identity = identity_of(who, where, dialled.dialled);
  if (dialled.via && dialled.via->addresses.empty()) {
    out.identity.dialled.reset();  // the upstream resolved the name: no address was decided
  }
  if (session_of_backend) {
    error_code ec;
    const auto local = out.stream->socket().local_endpoint(ec);
    const auto remote = ec ? tcp::endpoint() : out.stream->socket().remote_endpoint(ec);
    if (!ec) {
      ctx.services->kinds->of(backend->kind)
          .on_connected(*session_of_backend, to_config_address(local.address()), remote.address(), out.hold.get());
    }
  }
  co_return out;
}

const dial_plan& plan_for(const session_context& ctx, const target&) {
  if (ctx.services != nullptr && ctx.services->plan != nullptr) {
    return *ctx.services->plan;  // edgerelay client: every session goes to the gateway
  }
  static const direct_dial direct;  // stateless: every session may share it
  return direct;
}

}  // namespace edgerelay::proxy
