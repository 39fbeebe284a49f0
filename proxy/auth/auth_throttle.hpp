// Failed-login bookkeeping: a back-off per source address, a growing delay per user name.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// Thread-safe, one per process, so a source cannot multiply its allowance by reaching several
/// workers. Each call holds the lock for one table look-up (never during a verification). Only
/// failures create entries, and both tables are bounded: the least recently touched entry goes
/// first, so an attacker with many addresses or names costs a fixed amount of memory (and at worst
/// pushes older entries out early). Callers pass the time, so tests drive it with their own clock.
class auth_throttle {
 public:
  using clock = std::chrono::steady_clock;

  /// Below min_delay_step a delay would hide in network jitter; the per-name delay starts there
  /// and doubles with each failure past the limit, up to auth_failures.user_delay.
  static constexpr std::chrono::milliseconds min_delay_step{250};

  explicit auth_throttle(std::size_t max_sources = 16384, std::size_t max_users = 16384);

  /// True when `source` is in its back-off: the attempt gets the failure reply without a verification.
  bool refuses(const config::ip_address& source, clock::time_point now);

  struct failure_verdict {
    /// How long to hold the failure reply: grows with the failures against the name, whatever the
    /// source, but never refuses it, so an attacker cannot lock the real user out.
    std::chrono::milliseconds reply_delay{0};
    bool source_throttled = false;      ///< this failure started the source's back-off (log it, once)
    std::uint32_t source_failures = 0;  ///< failures of the source in its current window
  };
  /// Records a verification that failed for `user` from `source`.
  failure_verdict failed(const config::ip_address& source, std::string_view user, clock::time_point now,
                         const config::auth_failures_config& limits);

  std::size_t sources() const;
  std::size_t users() const;

 private:
  struct address_hash {
    std::size_t operator()(const config::ip_address& a) const noexcept;
  };
  struct source_entry {
    clock::time_point window_start{};
    std::uint32_t failures = 0;
    clock::time_point blocked_until{};
  };
  struct user_entry {
    clock::time_point window_start{};
    std::uint32_t failures = 0;
  };

  /// A map bounded by evicting its least recently touched key.
  template <class Key, class Value, class Hash = std::hash<Key>>
  class lru_map {
   public:
    explicit lru_map(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
    Value* find(const Key& k);
    Value& touch(const Key& k);  ///< find, or insert a default Value (evicting the oldest when full)
    std::size_t size() const noexcept { return index_.size(); }

   private:
    using entry = std::pair<Key, Value>;
    std::size_t capacity_;
    std::list<entry> order_;  ///< front: most recently touched
    std::unordered_map<Key, typename std::list<entry>::iterator, Hash> index_;
  };

  mutable std::mutex mu_;
  lru_map<config::ip_address, source_entry, address_hash> sources_;
  lru_map<std::string, user_entry> users_;
};

/// The key a source is counted under: the address itself for IPv4, its /64 for IPv6 (one host
/// usually holds a whole /64, so counting single addresses would not slow it down).
config::ip_address throttle_key(const config::ip_address& source) noexcept;

}  // namespace edgerelay::proxy
