#include "proxy/outbound/dial_plan.hpp"

#include <utility>

namespace edgerelay::proxy {

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
  dial_result dialled = co_await proxy::dial(ctx.snapshot->pol, who, where, dl, opts);
  out.result = record_dial(rec, dl.expired() ? nullptr : &dialled);
  if (opts.backend_down && out.result == outcome::host_unreachable) {
    rec.detail = "backend_down";
  }
  if (out.result != outcome::success) {
    co_return out;
  }
  out.stream.emplace(std::move(*dialled.socket));
  out.result = co_await secure_backend(*out.stream, backend, *ctx.snapshot, rec, dl.slot());
  if (out.result != outcome::success) {
    out.stream.reset();
    co_return out;
  }
  out.identity = identity_of(who, where, dialled.dialled);
  if (session_of_backend) {
    error_code ec;
    const auto local = out.stream->socket().local_endpoint(ec);
    if (!ec) {
      ctx.services->kinds->of(backend->kind)
          .on_connected(*session_of_backend, to_config_address(local.address()), out.hold.get());
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
