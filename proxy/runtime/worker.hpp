// worker: one thread, one io_context, its own SO_REUSEPORT acceptors and the sessions they accept.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/password.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/context.hpp"
#include "proxy/observe/tls_failures.hpp"
#include "proxy/relay/relay_pools.hpp"
#include "proxy/runtime/source_limiter.hpp"
#include "proxy/session/session_registry.hpp"
#include "sql602/runtime/break_table.hpp"

namespace edgerelay::proxy {

/// What a worker owns for its sessions, and the view of it they are lent. Touched only on the
/// worker's thread.
struct worker_services {
  relay_pools pools;
  session_registry registry;
  config::password_cache passwords;
  std::shared_ptr<const runtime_snapshot> snapshot;      ///< the current one; sessions copy it at start
  std::atomic<std::int64_t>* active_sessions = nullptr;  ///< process-wide, owned by the server
  source_limiter* per_source = nullptr;                  ///< process-wide, owned by the server
  session_services lent;                                 ///< points into this object and into the server
};

class worker {
 public:
  worker(unsigned index, std::shared_ptr<const runtime_snapshot> snapshot, std::atomic<std::int64_t>& active_sessions,
         source_limiter& per_source, session_services shared);
  /// `shared` holds the process-wide services; the worker adds its own (pools, registry, passwords).
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  ~worker();

  /// Binds `listener` on `at` with SO_REUSEPORT (before start()); returns the bound endpoint.
  /// Throws std::runtime_error naming the listener and address when it cannot bind.
  tcp::endpoint add_listener(const std::string& listener, const tcp::endpoint& at);

  void start();
  /// Thread-safe requests, carried out on the worker's thread.
  void stop_accepting();
  void close_sessions();
  /// New sessions use `snapshot` from now on; with `recheck`, live tunnels are decided again under
  /// its rules and those now denied are closed.
  void publish(std::shared_ptr<const runtime_snapshot> snapshot, bool recheck);
  /// Last resort after the grace period: stop the event loop even if something still waits.
  void stop_loop() { ioc_.stop(); }
  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  void join();

 private:
  struct acceptor_slot {
    std::string listener;
    tcp::acceptor acceptor;
  };

  unsigned index_;
  net::io_context ioc_{1};
  worker_services services_;
  std::vector<std::unique_ptr<acceptor_slot>> acceptors_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
};

}  // namespace edgerelay::proxy
