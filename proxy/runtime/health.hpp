// Backend health checks: a TCP connect probe to PORTBASE+1 and, for kind sql602, a discovery query
// to UDP PORTBASE. One probe loop per backend with `health_check`, on the control io_context; the
// state goes to the health_board the sessions and UDP doors read; changes are logged.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/model.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/outbound/backend_state.hpp"

namespace edgerelay::proxy {

struct probe_report {
  bool tcp_ok = false;
  std::optional<bool> discovery_ok;  ///< set for kind sql602
  std::string detail;                ///< "tcp ok, discovery ok", "tcp: connection refused", ...
  bool up() const noexcept { return tcp_ok && discovery_ok.value_or(true); }
};

/// One probe round for `b`, each step bounded by `timeout` (the name lookup is not). Never throws.
net::awaitable<probe_report> probe_backend(config::backend_config b, std::chrono::milliseconds timeout);

/// The probe timeout for `b`: its health_check timeout, else 2 s.
std::chrono::milliseconds probe_timeout(const config::backend_config& b) noexcept;

class health_monitor {
 public:
  health_monitor(net::io_context& control, health_board& board) : control_(control), board_(&board) {}
  health_monitor(const health_monitor&) = delete;
  health_monitor& operator=(const health_monitor&) = delete;

  /// Starts a probe loop for every backend of `cfg` that has a health_check.
  void start(const config::config& cfg);
  /// Control thread: ends the loops (a probe in flight ends within its timeout).
  void stop();

 private:
  net::awaitable<void> watch(config::backend_config b);
  net::io_context& control_;
  health_board* board_;
  std::set<net::steady_timer*> sleeping_;
  bool stopped_ = false;
};

}  // namespace edgerelay::proxy
