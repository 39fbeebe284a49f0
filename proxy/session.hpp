// run_session(): one client connection from accept to close (DESIGN section 2).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "config/password.hpp"
#include "proxy/asio.hpp"
#include "proxy/break_table.hpp"
#include "proxy/relay_pools.hpp"
#include "proxy/session_registry.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/source_limiter.hpp"
#include "proxy/tls_failures.hpp"
#include "tunnel/client_stream.hpp"

namespace edgerelay::proxy {

/// What a worker thread lends its sessions. Touched only on that worker's thread.
struct worker_services {
  relay_pools pools;
  session_registry registry;
  config::password_cache passwords;
  std::shared_ptr<const runtime_snapshot> snapshot;  ///< the current one; sessions copy it at start
  std::atomic<std::int64_t>* active_sessions = nullptr;  ///< process-wide, owned by the server
  source_limiter* per_source = nullptr;                  ///< process-wide, owned by the server
  backend_runtime* backends = nullptr;  ///< process-wide, owned by the server (thread-safe)
  tls_failure_log* tls_failures = nullptr;  ///< process-wide, owned by the server (thread-safe)
};

struct session_context {
  tcp::endpoint peer;  ///< the client, as accept() reported it
  std::shared_ptr<const runtime_snapshot> snapshot;
  const config::listener_config* listener = nullptr;  ///< points into *snapshot
  worker_services* services = nullptr;
  /// The session's entry for recheck on reload: whoever dials the upstream records it here.
  session_identity* identity = nullptr;
};

/// The session coroutine. Owns `client`; never throws out (errors are logged and end the session).
net::awaitable<void> run_session(tcp::socket client, session_context ctx);

}  // namespace edgerelay::proxy
