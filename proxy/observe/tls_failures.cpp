// tls_failure_log implementation.
#include "proxy/observe/tls_failures.hpp"

#include <chrono>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {

void tls_failure_log::record(std::string_view listener, std::string_view client, std::string_view reason) {
  const std::uint64_t total = total_.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::uint64_t unreported = unreported_.fetch_add(1, std::memory_order_relaxed) + 1;
  log::debug("tls", "listener '", listener, "': handshake from ", client, " failed: ", reason);
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  std::int64_t last = last_warning_ms_.load(std::memory_order_relaxed);
  if (now_ms - last < 1000 || !last_warning_ms_.compare_exchange_strong(last, now_ms, std::memory_order_relaxed)) {
    return;
  }
  unreported_.fetch_sub(unreported, std::memory_order_relaxed);
  log::warn("tls", "listener '", listener, "': handshake from ", client, " failed: ", reason, " (", unreported,
            " failed handshake(s) since the last report, ", total, " since start)");
}

}  // namespace edgerelay::proxy
