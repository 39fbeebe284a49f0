// The 602SQL break table: live sessions to sql602 backends, so a break datagram finds the session
// it was meant for (docs/602sql.md, breaks). Touched once at connect and once at close.
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
#include "proxy/outbound/backend_kind.hpp"
#include "proxy/outbound/backend_state.hpp"

namespace edgerelay::proxy {

/// Live sessions to sql602 backends, so a break datagram finds the session it was meant for.
/// Thread-safe: sessions register from worker threads, the UDP door looks up from the control thread.
class break_table final : public inband_break_sessions {
 public:
  struct entry {
    std::uint64_t order = 0;    ///< start order: lower is older
    config::ip_address client;  ///< the client as accepted
    config::ip_address egress;  ///< the session's source address towards the backend
    std::string backend;
    std::string listener;
    /// Set for a session whose breaks travel in-band (edgerelay client): its hold sends them, on
    /// `inband_at` only (send_inband()).
    backend_hold* inband = nullptr;
    net::any_io_executor inband_at;
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
  std::optional<entry> find(const config::ip_address& from, const config::ip_address& named, std::string_view backend,
                            std::string_view listener) const;
  std::size_t size() const;

  std::unique_ptr<backend_hold> add_inband(const config::ip_address& client, std::string backend, std::string listener,
                                           net::any_io_executor where, std::unique_ptr<backend_hold> sender) override;
  /// On the session's `inband_at`: sends the break of the in-band session `order`, when it is still
  /// live (its hold unregisters on that executor too, so a live entry's sender is alive).
  break_result send_inband(std::uint64_t order) const;

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, entry> entries_;  ///< ordered by start: the first match is the oldest
  std::uint64_t next_ = 1;
};

/// What the server lends every session for its backends (owned by the server, one per process).
struct backend_runtime {
  explicit backend_runtime(const config::config& cfg) : health(cfg) {}
  break_table breaks;
  egress_pools egress;
  health_board health;
};

}  // namespace edgerelay::proxy
