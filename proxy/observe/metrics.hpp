// Per-worker session counters: owned by one worker, updated on its thread when a session ends,
// copied on that thread for a scrape and summed there (docs/metrics.md).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "proxy/observe/access_log.hpp"

namespace edgerelay::proxy {

/// A Prometheus histogram with fixed upper bounds (seconds); counts are per bucket, not cumulative.
class duration_histogram {
 public:
  /// 1 ms to 10 min: the span from a refused handshake to a long tunnel.
  static constexpr std::array<double, 14> bounds{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,     2.5,  10,    60,   300, 600};
  /// 0.5 ms to 30 s: a handshake, a connect or a TLS handshake, bounded by their timeouts.
  static constexpr std::array<double, 14> phase_bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,    0.25,  0.5,    1,     2.5,  10,    30};

  /// A session-lifetime histogram (`bounds`), or a phase one (`phase_bounds`).
  explicit duration_histogram(const std::array<double, 14>& upper = bounds) noexcept : upper_(&upper) {}

  void observe(std::chrono::nanoseconds d) noexcept;
  /// Adds `other`'s counts; both must have the same bounds.
  void merge(const duration_histogram& other) noexcept;
  /// Observations at or under upper_bounds()[i], cumulative as the exposition wants them.
  std::uint64_t cumulative(std::size_t i) const noexcept;
  std::uint64_t count() const noexcept { return count_; }
  double sum_seconds() const noexcept { return sum_; }
  const std::array<double, 14>& upper_bounds() const noexcept { return *upper_; }

 private:
  const std::array<double, 14>* upper_;                 ///< one of the static arrays above
  std::array<std::uint64_t, bounds.size()> buckets_{};  ///< above the last bound: only in count_
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

/// The three phase histograms one listener keeps (docs/metrics.md).
struct phase_histograms {
  duration_histogram handshake{duration_histogram::phase_bounds};  ///< session start to request read
  duration_histogram connect{duration_histogram::phase_bounds};    ///< dial start to upstream connected
  duration_histogram tls{duration_histogram::phase_bounds};        ///< client TLS handshake
};

/// Label values are listener, rule and limit names from the config and fixed words (protocols,
/// results, reasons): never a client address or a user name, so the series stay bounded.
struct worker_metrics {
  using session_key = std::tuple<std::string, std::string, std::string>;  ///< listener, protocol, result
  using rule_key = std::pair<std::string, std::string>;                   ///< rule, action
  struct byte_counts {
    std::uint64_t up = 0;
    std::uint64_t down = 0;
  };

  std::map<session_key, std::uint64_t> sessions;
  std::map<std::string, std::int64_t> active_by_listener;
  std::map<std::string, byte_counts> bytes_by_listener;
  std::map<std::string, std::uint64_t> connect_errors;  ///< by reason
  std::map<rule_key, std::uint64_t> rule_decisions;
  std::map<std::string, std::uint64_t> limit_rejections;  ///< by limit
  duration_histogram session_duration;
  std::map<std::string, phase_histograms> phases_by_listener;
  using rejection_key = std::pair<std::string, std::string>;  ///< listener, reason
  std::map<rejection_key, std::uint64_t> proxy_header_rejections;

  /// Worker thread, when a session of `listener` is accepted.
  void session_started(std::string_view listener);
  /// Worker thread, once per session with its final access record.
  void session_ended(const access_record& rec);
  /// Worker thread: a connection refused before it became a session (max_sessions, per_source).
  void limit_rejected(std::string_view limit);

  /// Adds `other`'s counts (a scrape sums the workers' copies).
  void merge(const worker_metrics& other);
};

/// The limit a session's record says refused it ("tls_handshakes", "auth_throttle", ...), or empty.
std::string_view limit_of(const access_record& rec) noexcept;
/// Why a dial failed ("refused", "connect_timeout", "backend_down", ...), or empty when it did not.
std::string_view connect_error_of(const access_record& rec) noexcept;

}  // namespace edgerelay::proxy
