// server: the workers plus the control thread (signals, reload, graceful shutdown).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "config/load.hpp"
#include "proxy/admin/admin_server.hpp"
#include "proxy/auth/auth_throttle.hpp"
#include "proxy/auth/verify_pool.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/snapshot.hpp"
#include "proxy/outbound/backend_addresses.hpp"
#include "proxy/outbound/chain_dial.hpp"
#include "proxy/inbound/polling_sessions.hpp"
#include "proxy/inbound/tls_handshake_slots.hpp"
#include "proxy/runtime/config_watch.hpp"
#include "proxy/runtime/health.hpp"
#include "proxy/runtime/listener_plan.hpp"
#include "proxy/runtime/listener_sessions.hpp"
#include "proxy/runtime/sd_notify.hpp"
#include "proxy/runtime/socket_activation.hpp"
#include "proxy/runtime/source_limiter.hpp"
#include "proxy/runtime/takeover.hpp"
#include "proxy/runtime/worker.hpp"
#include "sql602/runtime/break_table.hpp"
#include "sql602/runtime/hooks.hpp"
#include "sql602/runtime/udp_door.hpp"

namespace edgerelay::proxy {

class dial_plan;

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
  std::string version = "0.0.0";  ///< for the admin listener's build_info
  /// Where READY, RELOADING, STOPPING, STATUS and WATCHDOG go (docs/operations-systemd.md); null or
  /// disabled: nowhere. Owned by the caller, outliving the server.
  sd_notifier* notify = nullptr;
  /// Sockets systemd passed, used at start by the listeners of the same names (checked against
  /// the config with check_passed_sockets() first). Closed once every worker has its dup.
  std::vector<passed_socket> passed = {};
  /// Between binding and serving: drop to the config's `user`/`group` and refuse root without
  /// `allow_root` (privileges.hpp). Off for servers embedded in tests.
  bool settle_identity = false;
  std::string takeover_socket{};  ///< where listen_for_takeover() listens; empty: nowhere
  /// Every session's dial plan (edgerelay client's tunnel to its gateway), outliving the server;
  /// null: the gateway's own plans.
  const dial_plan* plan = nullptr;
  /// How a reload reads the file: edgerelay client's files have `gateway` and `proxy` (a change of
  /// those takes a restart: the plan is built once).
  config::load_mode mode = config::load_mode::gateway;
};

class server final : public admin::status_source {
 public:
  server(config::config cfg, server_options options);
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server() override;

  /// Binds every listener on every worker and starts the worker threads. Throws on bind errors.
  /// With `inherited` (a takeover), the sockets of the running instance that the config's
  /// listeners and admin bind match are taken over instead of bound; the rest close.
  void start(takeover::inherited_sockets* inherited = nullptr);
  /// Control thread, after start(): accepts handovers on options.takeover_socket (a failure to
  /// listen there is logged; the server runs on without).
  void listen_for_takeover();
  /// Thread-safe. The address a listener is bound to now (its port when the config said port 0).
  /// Throws std::out_of_range for a listener the running config does not have.
  tcp::endpoint endpoint_of(std::string_view listener) const;
  std::int64_t active_sessions() const noexcept { return active_.load(std::memory_order_relaxed); }
  /// Thread-safe. The address a listener's udp_bind socket is bound to. Throws std::out_of_range
  /// without one.
  udp::endpoint udp_endpoint_of(std::string_view listener) const;
  /// That socket's datagram counters, valid until a reload closes the socket. Throws
  /// std::out_of_range without one.
  const udp_door_counters& udp_counters_of(std::string_view listener) const;
  /// Thread-safe: break table, egress pools and the health board.
  backend_runtime& backends() noexcept { return *backends_; }
  /// Thread-safe: what the backends' host names resolve to, for routing sessions by address.
  const backend_addresses& addresses() const noexcept { return addresses_; }
  /// Thread-safe: where logins are verified (its counters show how many ran).
  const verify_pool& verifier() const noexcept { return *verifier_; }

  /// Thread-safe. Stop accepting, drain up to shutdown_grace, then close what is left.
  void shutdown();
  /// Thread-safe. Re-read the config file and apply it: rules, listeners (closed, moved, opened),
  /// backends and their health checks. A bad file, or an address that cannot be bound, keeps the
  /// running config and every listener as it was.
  void reload();

  /// Runs the control loop in the calling thread until shutdown has completed. Returns the exit code.
  int run();

  /// Thread-safe. The admin listener's address; std::nullopt without one.
  std::optional<tcp::endpoint> admin_endpoint() const;
  /// Control thread (admin::status_source).
  bool ready() const override { return started_ && !shutting_down_; }
  net::awaitable<admin::scrape> take_scrape() override;

 private:
  using udp_doors = std::vector<std::pair<std::string, std::unique_ptr<sql602_udp_door>>>;
  /// What the open phase of a start or reload bound: every listener of the new config with its
  /// address (a kept one's too), and the udp_bind sockets opened for it.
  struct opened_listeners {
    std::vector<std::pair<std::string, tcp::endpoint>> bound;
    udp_doors doors;
    std::vector<std::string> opened;  ///< the listeners given new acceptors
  };

  net::awaitable<void> shutdown_sequence();
  void do_reload();
  /// The next snapshot from the config file, or null (the reasons logged).
  /// `why` gets the first reason when it fails.
  std::shared_ptr<const runtime_snapshot> load_next(std::string& why);
  /// Control thread: counts a reload's result for /status and /metrics.
  void note_reload(bool ok, std::string why);
  /// Binds every acceptor and udp_bind socket `plan` needs for `next`, before anything changes.
  /// Throws std::runtime_error naming the listener and address; nothing it opened stays open then.
  opened_listeners open_listeners(const config::config& next, const listener_plan& plan);
  /// Makes `snap` current with what open_listeners() bound: workers, udp_bind sockets, health
  /// checks and egress pools follow it.
  void commit(std::shared_ptr<const runtime_snapshot> snap, const listener_plan& plan, opened_listeners opened);
  /// Control thread, before commit(): what the plan closes, opens and renames.
  void log_listener_changes(const listener_plan& plan, const opened_listeners& opened) const;
  /// Takeover: dups of every listening socket, from the workers, the udp_bind doors and admin.
  net::awaitable<takeover::handover_sockets> gather_handover();
  /// Takeover: the new process accepts; stop accepting and drain. Returns the sessions draining.
  std::uint64_t hand_over();
  /// Binds or takes over `l`'s acceptors on every worker; returns the bound address.
  tcp::endpoint open_acceptors(const config::listener_config& l);
  void wait_signal();
  void file_settled();
  /// Control thread: looks `names` up in the background, each answer going to addresses_.
  void look_up_backends(std::vector<std::string> names);
  /// Control thread: one reload attempt; its result and a line for STATUS=.
  bool reload_once(std::string& status);
  void notify(std::string_view message);
  /// Control thread: the watchdog's period (half of WatchdogSec): a ping when every worker
  /// answered the last round's tick, then the next round's ticks.
  void watchdog_period();
  void post_ticks();
  std::string serving_status() const;

  server_options options_;
  std::shared_ptr<const runtime_snapshot> snapshot_;  ///< control thread only
  std::atomic<std::int64_t> active_{0};
  source_limiter per_source_;
  listener_sessions per_listener_;
  source_rate source_rates_;
  // Before workers_, so destroyed after them: a handshake's coroutine frame, destroyed with its
  // worker's event loop, gives its slot back then.
  tls_handshake_slots tls_handshakes_;
  tls_failure_log tls_failures_;
  upstream_health upstream_health_;  ///< pool members set aside, kept across reloads
  net::io_context control_;
  net::executor_work_guard<net::io_context::executor_type> keep_running_;
  net::signal_set signals_;
  std::optional<file_identity> config_file_state_;  ///< the version of the file last read
  std::unique_ptr<config_watch> watch_;
  std::unique_ptr<backend_runtime> backends_;
  backend_addresses addresses_;
  std::unique_ptr<session_hooks> hooks_;
  /// HTTP-polling sessions of every worker; declared before the workers, whose sessions use it.
  polling_sessions polling_;
  std::vector<std::unique_ptr<worker>> workers_;
  // After workers_, so destroyed before them: the pool posts the results still owed to the
  // workers' event loops, which must exist until it has stopped.
  auth_throttle auth_;
  std::unique_ptr<verify_pool> verifier_;
  /// bound_ and udp_doors_ change on the control thread and are read by the thread-safe getters.
  mutable std::mutex listeners_mu_;
  udp_doors udp_doors_;
  /// Stopped by a reload, destroyed once nothing of them runs (checked at the next reload).
  std::vector<std::unique_ptr<sql602_udp_door>> retired_doors_;
  std::unique_ptr<health_monitor> health_;
  std::vector<std::pair<std::string, tcp::endpoint>> bound_;
  bool shutting_down_ = false;
  bool force_close_ = false;
  bool started_ = false;
  std::optional<tick_rounds> rounds_;  ///< with a watchdog; control thread only
  std::optional<net::steady_timer> watchdog_timer_;
  bool watchdog_stalled_ = false;  ///< the last period found a worker that had not answered
  bool handed_over_ = false;
  takeover::inherited_sockets* inherited_ = nullptr;  ///< during start() only
  admin::reload_history reloads_;                     ///< control thread only
  // Last, so destroyed first: its connections wait on the verifier and read the workers.
  std::unique_ptr<admin::admin_server> admin_;
  std::optional<tcp::endpoint> admin_endpoint_;  ///< under listeners_mu_
  std::unique_ptr<takeover::listener> takeover_;
};

}  // namespace edgerelay::proxy
