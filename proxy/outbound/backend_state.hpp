// State sessions to backends share across worker threads: egress address pools and the health
// board. Neither is on the relay's hot path: a session touches them once at connect and once at close.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/model.hpp"

namespace edgerelay::proxy {

using ipv4_bytes = std::array<std::uint8_t, 4>;  ///< network order

/// Per-backend pools of egress IPv4 addresses: one address per live session while one is free.
/// Thread-safe. Addresses whose last octet is 128 or more are never handed out (docs/602sql.md, egress).
class egress_pools {
 public:
  /// Returns its address to the pool when destroyed. Empty (false) when the pool was exhausted.
  class lease {
   public:
    lease() = default;
    lease(egress_pools* p, std::string backend, std::uint32_t address)
        : pools_(p), backend_(std::move(backend)), address_(address) {}
    lease(lease&& o) noexcept
        : pools_(std::exchange(o.pools_, nullptr)), backend_(std::move(o.backend_)), address_(o.address_) {}
    lease& operator=(lease&& o) noexcept;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() { reset(); }
    void reset() noexcept;
    explicit operator bool() const noexcept { return pools_ != nullptr; }
    ipv4_bytes address() const noexcept;

   private:
    egress_pools* pools_ = nullptr;
    std::string backend_;
    std::uint32_t address_ = 0;  ///< host order
  };

  /// The first free address of `b.egress`, in the order written; an empty lease when none is free.
  lease acquire(const config::backend_config& b);
  std::size_t in_use(std::string_view backend) const;
  /// After a reload: forgets the backends `cfg` no longer has once none of their addresses is
  /// leased. A backend whose egress changed keeps its book: new sessions take addresses from the
  /// new list, and an address a live session still holds is handed out again only when it ends,
  /// so two sessions never share one (the server matches breaks by address).
  void follow(const config::config& cfg);

 private:
  void release(const std::string& backend, std::uint32_t address) noexcept;
  mutable std::mutex mu_;
  std::map<std::string, std::set<std::uint32_t>, std::less<>> in_use_;
};

enum class backend_health : std::uint8_t { unknown, up, down };
std::string_view to_string(backend_health h) noexcept;

/// The last health-check result of each backend. Sessions read it once per dial, under a shared
/// lock; only a reload changes the set of names.
class health_board {
 public:
  explicit health_board(const config::config& cfg);
  /// After a reload: new backends of `cfg` start unknown, removed ones go, and those named in
  /// `restart` (their address or probe changed) start over as unknown until their next probe.
  void follow(const config::config& cfg, const std::vector<std::string>& restart);
  /// unknown for a backend without health checks or not known at start.
  backend_health state(std::string_view backend) const noexcept;
  bool is_down(std::string_view backend) const noexcept { return state(backend) == backend_health::down; }
  /// Stores `h`; returns the previous state.
  backend_health set(std::string_view backend, backend_health h) noexcept;

 private:
  /// Needs mu_ held.
  std::atomic<std::uint8_t>* slot(std::string_view backend) const noexcept;
  mutable std::shared_mutex mu_;
  std::vector<std::pair<std::string, std::unique_ptr<std::atomic<std::uint8_t>>>> states_;
};

}  // namespace edgerelay::proxy
