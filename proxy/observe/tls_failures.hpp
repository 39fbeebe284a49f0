// Failed client TLS handshakes: counted process-wide, logged without letting a scanner flood the log.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace edgerelay::proxy {

/// Every failure is logged at debug level; a warning (with the reason of the failure that
/// triggers it and the count since the last warning) goes out at most once per second.
/// Thread-safe: workers share one.
class tls_failure_log {
 public:
  void record(std::string_view listener, std::string_view client, std::string_view reason);
  /// Failed handshakes since start.
  std::uint64_t total() const noexcept { return total_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> total_{0};
  std::atomic<std::uint64_t> unreported_{0};
  std::atomic<std::int64_t> last_warning_ms_{0};
};

}  // namespace edgerelay::proxy
