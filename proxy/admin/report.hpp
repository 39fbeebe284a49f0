// What one scrape saw, and its two renderings: /metrics (Prometheus text) and /status (JSON).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proxy/observe/metrics.hpp"

namespace edgerelay::proxy::admin {

/// The last reload, as /status and the reload metrics tell it.
struct reload_history {
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::string last_result = "none";  ///< "none" (no reload yet), "ok" or "failed"
  std::string last_message;          ///< the first reason of a failure; empty after "ok"
  double last_at = 0;                ///< unix seconds of the last reload, 0 before one
  double last_ok_at = 0;             ///< unix seconds of the last good one; the start before one
  std::uint64_t last_ok_generation = 1;
};

struct listener_view {
  std::string name;
  std::string bind;  ///< the bound address, "ip:port"
};

struct backend_view {
  std::string name;
  std::string health;  ///< unknown, up, down
};

/// Everything the server knows at one scrape; the workers' counters already summed.
struct scrape {
  std::uint64_t generation = 0;
  bool ready = false;
  std::int64_t sessions_active = 0;
  std::vector<listener_view> listeners;
  std::vector<backend_view> backends;
  worker_metrics sessions;
  reload_history reloads;
  std::uint64_t log_lines_dropped = 0;
  std::string version;
};

/// The process_* metrics, from /proc/self (each absent when it could not be read).
struct process_stats {
  std::optional<double> cpu_seconds;
  std::optional<double> start_time;  ///< unix seconds
  std::optional<double> resident_bytes;
  std::optional<double> virtual_bytes;
  std::optional<double> open_fds;
  std::optional<double> max_fds;
};
process_stats read_process_stats();

std::string render_metrics(const scrape& s, const process_stats& p);
std::string render_status(const scrape& s);

}  // namespace edgerelay::proxy::admin
