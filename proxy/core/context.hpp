// What a session is handed at accept: who the client is, the snapshot it runs under, and what its
// worker lends it. Every room of the pipeline reads this; the worker (runtime/) owns what it points at.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "config/model.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/snapshot.hpp"

namespace edgerelay::config {
class password_cache;
}

namespace edgerelay::proxy {

class relay_pools;
class session_registry;
class udp_associations;
class tls_failure_log;
class health_board;
class egress_pools;
class backend_kinds;
class backend_addresses;
class http_door_extension;
class verify_pool;
class auth_throttle;
class tls_handshake_slots;
class polling_sessions;
class inband_break_sessions;
class upstream_health;
struct session_identity;
struct worker_metrics;
class dial_plan;

/// What a worker lends its sessions. Each pointer is owned by the worker or the server and
/// outlives every session; the per-worker ones are touched only on that worker's thread, the
/// process-wide ones (health, egress, addresses, tls_failures, hooks, verifier, auth, tls_handshakes) are
/// thread-safe or immutable.
struct session_services {
  relay_pools* pools = nullptr;
  session_registry* registry = nullptr;
  udp_associations* associations = nullptr;  ///< the registry's list of live UDP associations
  config::password_cache* passwords = nullptr;
  health_board* health = nullptr;  ///< null when the process runs no health checks
  egress_pools* egress = nullptr;
  const backend_addresses* addresses = nullptr;  ///< what backend host names resolve to, for routing
  tls_failure_log* tls_failures = nullptr;
  const backend_kinds* kinds = nullptr;                 ///< what each backend kind adds to a session
  const http_door_extension* http_extension = nullptr;  ///< plain-HTTP doors beside forward proxying
  verify_pool* verifier = nullptr;                      ///< where password checks run, off the workers
  auth_throttle* auth = nullptr;                        ///< failed logins per source and per user name
  tls_handshake_slots* tls_handshakes = nullptr;        ///< client TLS handshakes running, in all and per source
  worker_metrics* metrics = nullptr;                    ///< the worker's counters (per worker); null: none kept
  /// The worker's current snapshot (per worker): a later request on a kept HTTP connection is
  /// served under it, as a new session would be. Null: sessions only know their own.
  const std::shared_ptr<const runtime_snapshot>* current_snapshot = nullptr;
  /// The process's one dial plan when it is not the gateway's own (edgerelay client: the tunnel to
  /// the gateway); owned by whoever runs the server, thread-safe. Null: plan_for() chooses.
  const dial_plan* plan = nullptr;
  polling_sessions* polling = nullptr;  ///< the process-wide HTTP-polling sessions (thread-safe)
  /// edgerelay client: where a session whose breaks travel in-band registers for its listener's
  /// UDP door (thread-safe); null: nowhere.
  inband_break_sessions* inband_breaks = nullptr;
  upstream_health* upstreams = nullptr;  ///< the process-wide pool members set aside (thread-safe)
};

/// What a trusted load balancer's PROXY header said beyond the client's address
/// (inbound/proxy_header.hpp); the session frame that read it owns it.
struct proxied_by {
  tcp::endpoint balancer;   ///< the load balancer, as accept() reported it
  std::string authority;    ///< AUTHORITY TLV: the name the client asked the balancer for
  std::string tls_version;  ///< SSL TLV: the client spoke TLS to the balancer
  std::string tls_cn;       ///< SSL TLV: its client certificate's common name
};

struct session_context {
  tcp::endpoint peer;  ///< the client, as accept() reported it
  std::shared_ptr<const runtime_snapshot> snapshot;
  const config::listener_config* listener = nullptr;  ///< points into *snapshot
  session_services* services = nullptr;
  /// The session's entry for recheck on reload: whoever dials the upstream records it here.
  session_identity* identity = nullptr;
  /// What the client connected to: a PROXY header's destination, else the listening address
  /// (the socket's own when the listener is bound to a wildcard). send_proxy writes it.
  tcp::endpoint local{};
  const proxied_by* proxied = nullptr;  ///< set when a load balancer's header named `peer`
  /// When the connection was accepted, if a phase before the door (a PROXY header) already spent
  /// part of handshake_timeout; unset: the door's phase starts the count.
  std::chrono::steady_clock::time_point accepted_at{};
};

/// What is left of handshake_timeout for the phase starting now: one budget from the accept
/// through the PROXY header, TLS and the door, so that no phase gives a slow client a fresh one.
inline std::chrono::milliseconds handshake_left(const session_context& ctx) {
  const std::chrono::milliseconds limit = ctx.snapshot->cfg.limits.handshake_timeout;
  if (ctx.accepted_at == std::chrono::steady_clock::time_point{}) return limit;
  const auto spent =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - ctx.accepted_at);
  return std::max(limit - spent, std::chrono::milliseconds(1));
}

}  // namespace edgerelay::proxy
