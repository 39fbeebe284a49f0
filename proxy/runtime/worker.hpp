// worker: one thread, one io_context, its own SO_REUSEPORT acceptors and the sessions they accept.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/password.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/context.hpp"
#include "proxy/observe/metrics.hpp"
#include "proxy/observe/tls_failures.hpp"
#include "proxy/relay/relay_pools.hpp"
#include "proxy/runtime/listener_sessions.hpp"
#include "proxy/runtime/source_limiter.hpp"
#include "proxy/runtime/source_rate.hpp"
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
  listener_sessions* per_listener = nullptr;             ///< process-wide, owned by the server
  source_rate* source_rates = nullptr;                   ///< process-wide, owned by the server
  worker_metrics metrics;                                ///< this worker's counters, summed at a scrape
  session_services lent;                                 ///< points into this object and into the server
};

/// What a reload changes in a worker's acceptors; applied with its snapshot, in one step on the
/// worker's thread, so no connection is accepted under a listener the snapshot no longer has.
struct acceptor_changes {
  std::vector<std::string> close;                           ///< listeners that stop accepting
  std::vector<std::pair<std::string, std::string>> rename;  ///< (old, new): same acceptor, new name
};

class worker {
 public:
  worker(unsigned index, std::shared_ptr<const runtime_snapshot> snapshot, std::atomic<std::int64_t>& active_sessions,
         source_limiter& per_source, listener_sessions& per_listener, source_rate& source_rates,
         session_services shared);
  /// `shared` holds the process-wide services; the worker adds its own (pools, registry, passwords).
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  ~worker();

  /// Control thread: binds `listener` on `at` with SO_REUSEPORT and returns the bound endpoint.
  /// It accepts from the next start() or publish() on; until then discard_opened() closes it.
  /// Throws std::runtime_error naming the listener and address when it cannot bind.
  tcp::endpoint open_listener(const std::string& listener, const tcp::endpoint& at);
  /// Control thread: accepts for `listener` on a socket already listening (socket activation):
  /// this worker's acceptor is a dup(2) of `fd`, so every worker waits on the one kernel queue and
  /// whichever wakes first accepts. `fd` stays the caller's. Returns the address it is bound to.
  /// Throws std::runtime_error naming the listener and descriptor.
  tcp::endpoint adopt_listener(const std::string& listener, int fd);
  /// Control thread: like open_listener(), with a socket already listening (handed over by the
  /// running instance); the worker owns `fd` from now on, even when this throws.
  tcp::endpoint take_listener(const std::string& listener, int fd);
  /// Thread-safe: calls `lend` on the worker's thread with a dup of every socket it accepts on
  /// (listener name, descriptor); the receiver owns the descriptors.
  void lend_listeners(std::function<void(std::vector<std::pair<std::string, int>>)> lend);
  /// Thread-safe: stops accepting and lets go of the listening sockets without closing them for
  /// the new process that accepts on them too (takeover).
  void hand_over();
  /// Control thread: closes what open_listener() opened since the last start() or publish().
  void discard_opened() noexcept { opened_.clear(); }

  void start();
  /// Thread-safe requests, carried out on the worker's thread.
  void stop_accepting();
  void close_sessions();
  /// New sessions use `snapshot` from now on; with `recheck`, live tunnels are decided again under
  /// its rules and those now denied are closed, and UDP associations decide their next datagrams
  /// under it (closed when a destination they relayed to is now denied). `changes` and the
  /// listeners opened since the last publish take effect in the same step. Sessions in flight keep
  /// the snapshot they started with, except that each new request on a kept HTTP connection is
  /// served under the current one.
  void publish(std::shared_ptr<const runtime_snapshot> snapshot, bool recheck, acceptor_changes changes = {});
  /// Last resort after the grace period: stop the event loop even if something still waits.
  void stop_loop() { ioc_.stop(); }
  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  /// Thread-safe: calls `reader` on the worker's thread with its counters (it must copy what it
  /// keeps). Never called once the event loop has stopped: read final_metrics() then.
  void read_metrics(std::function<void(const worker_metrics&)> reader);
  /// Thread-safe: runs `answer` on the worker's thread at its event loop's next turn (the
  /// watchdog's proof that the loop turns). Never run once the loop has stopped.
  void tick(std::function<void()> answer);
  /// The counters of a worker whose thread has finished(); nothing touches them any more.
  const worker_metrics& final_metrics() const noexcept { return services_.metrics; }
  void join();

 private:
  /// Takes `fd` (a listening TCP socket; closed when this throws) as one of this worker's
  /// acceptors; `what` names it in errors.
  tcp::endpoint own_listener(const std::string& listener, int fd, const std::string& what);
  struct acceptor_slot {
    std::string listener;  ///< renamed in place by a reload; the accept loop reads it
    tcp::acceptor acceptor;
  };
  /// Worker thread: starts accepting on `slot`; the slot is dropped when its loop ends.
  void spawn_accept_loop(std::unique_ptr<acceptor_slot> slot);

  unsigned index_;
  net::io_context ioc_{1};
  worker_services services_;
  std::vector<std::unique_ptr<acceptor_slot>> acceptors_;  ///< worker thread (before start(): control)
  std::vector<std::unique_ptr<acceptor_slot>> opened_;     ///< control thread: bound, not yet accepting
  std::thread thread_;
  std::atomic<bool> finished_{false};
};

}  // namespace edgerelay::proxy
