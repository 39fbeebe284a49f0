#include "proxy/inbound/tls_accept.hpp"

#include <string>
#include <utility>

#include "config/address.hpp"
#include "proxy/auth/auth_throttle.hpp"
#include "proxy/inbound/tls_handshake_slots.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/observe/tls_failures.hpp"
#include "proxy/outbound/connector.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::proxy {
namespace {

/// Logs a refusal the slot table says is due: once per source and period, with the refusals
/// since the source's last report.
void report_refusal(const session_context& ctx, const config::ip_address& source,
                    const tls_handshake_slots::verdict& v) {
  const config::tls_handshakes_config& limits = ctx.snapshot->cfg.limits.tls_handshakes;
  const config::ip_address key = throttle_key(source);
  const std::string who = key.v6 ? concat(config::to_string(key), "/64") : config::to_string(key);
  const std::string why = v.refused == handshake_refusal::full
                              ? concat(limits.max, " running in all (limits.tls_handshakes.max)")
                              : concat(limits.per_source, " running from there (limits.tls_handshakes.per_source)");
  const auto period = std::chrono::duration_cast<std::chrono::seconds>(tls_handshake_slots::report_period);
  log::warn("tls", "listener '", ctx.listener->name, "': TLS handshakes from ", who, " refused: ", why, "; ",
            v.refusals, " refused since the last report for this source (at most one every ", period.count(), "s)");
}

}  // namespace

net::awaitable<bool> accept_tls(tunnel::client_stream& client, net::ssl::context& tls,
                                std::span<const std::uint8_t> first, const session_context& ctx, access_record& rec,
                                phase_deadline& dl) {
  // Taken before the TLS state exists, held until the handshake has ended however it ends.
  const config::ip_address source = to_config_address(ctx.peer.address());
  tls_handshake_slots::verdict admitted = ctx.services->tls_handshakes->try_acquire(
      source, ctx.snapshot->cfg.limits.tls_handshakes, tls_handshake_slots::clock::now());
  if (!admitted.held) {
    rec.detail = admitted.refused == handshake_refusal::full ? "tls_handshakes_full" : "tls_handshakes_per_source";
    if (admitted.report) {
      report_refusal(ctx, source, admitted);
    }
    co_return false;
  }
  rec.tls_started = std::chrono::steady_clock::now();
  if (const error_code ec = co_await client.start_tls(tls, first, dl.slot())) {
    rec.tls_error = dl.expired() ? "handshake timeout" : tunnel::tls_failure_reason(client.ssl(), ec);
    ctx.services->tls_failures->record(ctx.listener->name, rec.client, rec.tls_error);
    co_return false;
  }
  rec.tls_done = std::chrono::steady_clock::now();
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
