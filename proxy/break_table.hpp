// State the sessions to backends share across worker threads: the 602SQL break table, the egress
// address pools and the health board (602sql-wire.md 8.3, DESIGN section 4). None of it is on the
// relay's hot path: a session touches it once at connect and once at close.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/model.hpp"

namespace edgerelay::proxy {

using ipv4_bytes = std::array<std::uint8_t, 4>;  ///< network order

/// Live sessions to sql602 backends, so a break datagram finds the session it was meant for.
/// Thread-safe: sessions register from worker threads, the UDP door looks up from the control thread.
class break_table {
 public:
  struct entry {
    std::uint64_t order = 0;      ///< start order: lower is older
    config::ip_address client;    ///< the client as accepted
    config::ip_address egress;    ///< the session's source address towards the backend
    std::string backend;
    std::string listener;
  };

  /// Removes its entry when destroyed. Empty when default-constructed.
  class registration {
   public:
    registration() = default;
    registration(break_table* t, std::uint64_t order) : table_(t), order_(order) {}
    registration(registration&& o) noexcept : table_(std::exchange(o.table_, nullptr)), order_(o.order_) {}
    registration& operator=(registration&& o) noexcept;
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;
    ~registration() { reset(); }
    void reset() noexcept;

   private:
    break_table* table_ = nullptr;
    std::uint64_t order_ = 0;
  };

  registration add(const config::ip_address& client, const config::ip_address& egress, std::string backend,
                   std::string listener);

  /// The session a break from `from` naming client address `named` is for: among the live
  /// sessions of that client (`from`) to `backend` (empty: any) through `listener` (empty: any),
  /// the oldest whose client address equals `named`, else (a client behind NAT names its private
  /// address) the oldest of that client. nullopt when the client has no such session.
  std::optional<entry> find(const config::ip_address& from, const config::ip_address& named,
                            std::string_view backend, std::string_view listener) const;
  std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, entry> entries_;  ///< ordered by start: the first match is the oldest
  std::uint64_t next_ = 1;
};

/// Per-backend pools of egress IPv4 addresses: one address per live session while one is free.
/// Thread-safe. Addresses whose last octet is 128 or more are never handed out (602sql-wire 8.2).
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

 private:
  void release(const std::string& backend, std::uint32_t address) noexcept;
  mutable std::mutex mu_;
  std::map<std::string, std::set<std::uint32_t>, std::less<>> in_use_;
};

enum class backend_health : std::uint8_t { unknown, up, down };
std::string_view to_string(backend_health h) noexcept;

/// The last health-check result of each backend. The set of names is fixed at construction (the
/// config the server started with); the states are atomics, so sessions read them without a lock.
class health_board {
 public:
  explicit health_board(const config::config& cfg);
  /// unknown for a backend without health checks or not known at start.
  backend_health state(std::string_view backend) const noexcept;
  bool is_down(std::string_view backend) const noexcept { return state(backend) == backend_health::down; }
  /// Stores `h`; returns the previous state.
  backend_health set(std::string_view backend, backend_health h) noexcept;

 private:
  const std::atomic<std::uint8_t>* slot(std::string_view backend) const noexcept;
  std::vector<std::pair<std::string, std::unique_ptr<std::atomic<std::uint8_t>>>> states_;
};

/// What the server lends every session for its backends (owned by the server, one per process).
struct backend_runtime {
  explicit backend_runtime(const config::config& cfg) : health(cfg) {}
  break_table breaks;
  egress_pools egress;
  health_board health;
};

}  // namespace edgerelay::proxy
