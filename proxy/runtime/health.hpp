// Backend health checks: a TCP connect probe to PORTBASE+1 and, for kind sql602, a discovery query
// to UDP PORTBASE. One probe loop per backend with `health_check`, on the control io_context; the
// state goes to the health_board the sessions and UDP doors read, the addresses its host name
// resolved to go to backend_addresses (routing by address); changes are logged.
#pragma once

#include <chrono>
#include <list>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/model.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/outbound/backend_addresses.hpp"
#include "proxy/outbound/backend_state.hpp"

namespace edgerelay::proxy {

struct probe_report {
  bool tcp_ok = false;
  std::optional<bool> discovery_ok;        ///< set for kind sql602
  std::string detail;                      ///< "tcp ok, discovery ok", "tcp: connection refused", ...
  std::vector<net::ip::address> resolved;  ///< what the host resolved to (empty: it did not); the first is probed
  bool up() const noexcept { return tcp_ok && discovery_ok.value_or(true); }
};

/// One probe round for `b`: the lookup of its host, then each step bounded by `timeout` (the
/// lookup is not). Never throws.
net::awaitable<probe_report> probe_backend(config::backend_config b, std::chrono::milliseconds timeout);

/// The probe timeout for `b`: its health_check timeout, else 2 s.
std::chrono::milliseconds probe_timeout(const config::backend_config& b) noexcept;

/// Whether `a` and `b` are probed alike (host, portbase, kind, health_check): a reload restarts
/// a backend's probe loop when they are not.
bool same_probe(const config::backend_config& a, const config::backend_config& b) noexcept;

class health_monitor {
 public:
  health_monitor(net::io_context& control, health_board& board, backend_addresses& addresses)
      : control_(control), board_(&board), addresses_(&addresses) {}
  health_monitor(const health_monitor&) = delete;
  health_monitor& operator=(const health_monitor&) = delete;

  /// Starts a probe loop for every backend of `cfg` that has a health_check.
  void start(const config::config& cfg);
  /// Control thread, after a reload to `cfg`: ends the loops of backends it removed, or whose
  /// probe it changed or dropped, and starts loops for the new and changed ones. Returns the
  /// backends whose last state no longer describes them (their loop ended or restarted).
  std::vector<std::string> follow(const config::config& cfg);
  /// Control thread: ends the loops (a probe in flight ends within its timeout).
  void stop();

 private:
  struct probe_loop {
    config::backend_config backend;
    bool ended = false;
    net::steady_timer* sleeping = nullptr;  ///< the loop's timer while it waits for the next round
  };
  void launch(const config::backend_config& b);
  static void end(probe_loop& loop);
  net::awaitable<void> watch(probe_loop& loop);

  net::io_context& control_;
  health_board* board_;
  backend_addresses* addresses_;
  std::list<probe_loop> loops_;  ///< a loop's entry goes when its coroutine returns
  bool stopped_ = false;
};

}  // namespace edgerelay::proxy
