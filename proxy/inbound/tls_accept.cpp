#include "proxy/inbound/tls_accept.hpp"

#include <string>
#include <utility>

#include "proxy/observe/tls_failures.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::proxy {

net::awaitable<bool> accept_tls(tunnel::client_stream& client, net::ssl::context& tls,
                                std::span<const std::uint8_t> first, const session_context& ctx, access_record& rec,
                                phase_deadline& dl) {
  if (const error_code ec = co_await client.start_tls(tls, first, dl.slot())) {
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

}  // namespace edgerelay::proxy
