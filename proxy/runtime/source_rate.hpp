// limits.per_source_rate: new connections a second from one client address, across workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// A token bucket per client address: `rate` tokens a second, at most `rate` saved up (a burst of
/// one second's worth). Thread-safe; touched once at accept, never on the relay path. The table
/// holds at most `max_sources` addresses: past that, the addresses whose buckets are full again
/// (nothing owed) are forgotten first, then the whole table, so a scan from many sources costs
/// bounded memory and at worst lets those sources start afresh.
class source_rate {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t max_sources = 65536;

  /// Takes one token for `source` at `now`; false means refuse. `rate` 0: no limit.
  bool try_take(const config::ip_address& source, std::uint32_t rate, clock::time_point now = clock::now());
  std::size_t tracked() const;

 private:
  struct bucket {
    double tokens = 0;
    clock::time_point last;
  };
  struct key_hash {
    std::size_t operator()(const config::ip_address& a) const noexcept;
  };
  void prune(std::uint32_t rate, clock::time_point now);
  mutable std::mutex mu_;
  std::unordered_map<config::ip_address, bucket, key_hash> buckets_;
};

}  // namespace edgerelay::proxy
