// worker: one thread, one io_context, its own SO_REUSEPORT acceptors and the sessions they accept.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "proxy/asio.hpp"
#include "proxy/session.hpp"
#include "proxy/tls_failures.hpp"

namespace edgerelay::proxy {

class worker {
 public:
  worker(unsigned index, std::shared_ptr<const runtime_snapshot> snapshot, std::atomic<std::int64_t>& active_sessions,
         source_limiter& per_source, backend_runtime& backends, tls_failure_log& tls_failures);
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
