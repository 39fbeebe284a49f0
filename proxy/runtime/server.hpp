// server: the workers plus the control thread (signals, reload, graceful shutdown).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "proxy/auth/auth_throttle.hpp"
#include "proxy/auth/verify_pool.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/snapshot.hpp"
#include "proxy/runtime/health.hpp"
#include "proxy/runtime/source_limiter.hpp"
#include "proxy/runtime/worker.hpp"
#include "sql602/runtime/break_table.hpp"
#include "sql602/runtime/hooks.hpp"
#include "sql602/runtime/udp_door.hpp"

namespace edgerelay::proxy {

/// The feature hooks sessions reach through session_services: built once, immutable, shared by
/// every worker.
struct session_hooks {
  explicit session_hooks(backend_runtime& b) : tcp(b.egress), sql602(b.egress, b.breaks), kinds(tcp) {
    kinds.set(config::backend_kind::sql602, sql602);
  }
  session_hooks(const session_hooks&) = delete;
  session_hooks& operator=(const session_hooks&) = delete;
  tcp_backend_kind tcp;
  sql602_backend_kind sql602;
  backend_kinds kinds;
  sql602_http_door sql602_http;
};

struct server_options {
  std::string config_path;  ///< empty: the built-in default (reload then only re-applies it)
  unsigned workers = 0;     ///< 0: config's `workers`, else one per core
  bool handle_signals = true;
};

class server {
 public:
  server(config::config cfg, server_options options);
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server();

  /// Binds every listener on every worker and starts the worker threads. Throws on bind errors.
  void start();
  /// The address a listener is bound to (its port when the config said port 0).
  tcp::endpoint endpoint_of(std::string_view listener) const;
  std::int64_t active_sessions() const noexcept { return active_.load(std::memory_order_relaxed); }
  /// The address a listener's udp_bind socket is bound to. Throws std::out_of_range without one.
  udp::endpoint udp_endpoint_of(std::string_view listener) const;
  /// That socket's datagram counters. Throws std::out_of_range without one.
  const udp_door_counters& udp_counters_of(std::string_view listener) const;
  /// Thread-safe: break table, egress pools and the health board.
  backend_runtime& backends() noexcept { return *backends_; }
  /// Thread-safe: where logins are verified (its counters show how many ran).
  const verify_pool& verifier() const noexcept { return *verifier_; }

  /// Thread-safe. Stop accepting, drain up to shutdown_grace, then close what is left.
  void shutdown();
  /// Thread-safe. Re-read the config file; a bad file keeps the running config.
  void reload();

  /// Runs the control loop in the calling thread until shutdown has completed. Returns the exit code.
  int run();

 private:
  net::awaitable<void> shutdown_sequence();
  void do_reload();
  void wait_signal();
  void watch_config_file();

  server_options options_;
  std::shared_ptr<const runtime_snapshot> snapshot_;  ///< control thread only
  std::atomic<std::int64_t> active_{0};
  source_limiter per_source_;
  tls_failure_log tls_failures_;
  net::io_context control_;
  net::executor_work_guard<net::io_context::executor_type> keep_running_;
  net::signal_set signals_;
  net::steady_timer file_watch_;
  std::string config_file_state_;  ///< inode, size and mtime last seen
  std::unique_ptr<backend_runtime> backends_;
  std::unique_ptr<session_hooks> hooks_;
  std::vector<std::unique_ptr<worker>> workers_;
  // After workers_, so destroyed before them: the pool posts the results still owed to the
  // workers' event loops, which must exist until it has stopped.
  auth_throttle auth_;
  std::unique_ptr<verify_pool> verifier_;
  std::vector<std::pair<std::string, std::unique_ptr<sql602_udp_door>>> udp_doors_;
  std::unique_ptr<health_monitor> health_;
  std::vector<std::pair<std::string, tcp::endpoint>> bound_;
  bool shutting_down_ = false;
  bool force_close_ = false;
};

}  // namespace edgerelay::proxy
