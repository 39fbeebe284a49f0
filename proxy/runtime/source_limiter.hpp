// Per-source session counting across workers, for limits.per_source.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// Thread-safe; touched once at accept and once at session end, never on the relay path.
class source_limiter {
 public:
  /// Counts one more session from `source` unless it already has `limit`; false means refuse.
  bool try_acquire(const config::ip_address& source, std::uint32_t limit);
  void release(const config::ip_address& source);
  std::uint32_t count(const config::ip_address& source) const;

 private:
  struct key_hash {
    std::size_t operator()(const config::ip_address& a) const noexcept;
  };
  mutable std::mutex mu_;
  std::unordered_map<config::ip_address, std::uint32_t, key_hash> counts_;
};

}  // namespace edgerelay::proxy
