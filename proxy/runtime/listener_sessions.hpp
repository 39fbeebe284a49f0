// Per-listener session counting across workers, for a listener's max_sessions.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace edgerelay::proxy {

/// Thread-safe; touched once at accept and once at session end, never on the relay path. A
/// session counts under the listener name it was accepted on, until it ends.
class listener_sessions {
 public:
  /// Counts one more session on `listener` unless it already has `limit` (0: no limit of its own,
  /// counted all the same, so a reload that sets one finds the sessions open); false means refuse.
  bool try_acquire(const std::string& listener, std::uint32_t limit);
  void release(const std::string& listener);
  std::uint32_t count(std::string_view listener) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::uint32_t> counts_;
};

}  // namespace edgerelay::proxy
