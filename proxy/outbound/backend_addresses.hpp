// The addresses backend host names resolve to, so that a client naming a backend by address (the
// stock 602SQL client behind a SOCKS4 firewall sends the server's IPv4) reaches it as that backend.
//
// The table is written on the control thread: when a config is applied (its lookups run there or,
// at start, on threads of their own within a bound) and after each health probe's lookup. Sessions
// read it once, when their target is routed, under one shared lock; never on the relay path, and
// never with a lookup of their own.
#pragma once

#include <chrono>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

class backend_addresses {
 public:
  /// A shared lock on the table for as long as it lives: what route_to_backend() reads by.
  class reader {
   public:
    /// Whether the backend host name `host` last resolved to `a` (IPv4-mapped IPv6 is taken as
    /// IPv4). False for a name that did not resolve, or that no backend has.
    bool resolves_to(std::string_view host, const config::ip_address& a) const noexcept;

   private:
    friend class backend_addresses;
    explicit reader(const backend_addresses& table) : lock_(table.mu_), table_(&table) {}
    std::shared_lock<std::shared_mutex> lock_;
    const backend_addresses* table_;
  };

  /// Tracks the host names of `cfg`'s backends (an IP literal is compared as it is and needs no
  /// entry): a name new to the table has no addresses until store() gives it some, a name kept
  /// keeps its last addresses, and a name no backend has any more goes.
  void follow(const config::config& cfg);
  /// Records what the tracked name `host` resolved to (empty: it does not resolve), and logs the
  /// change: the addresses when they differ from the last ones, a failure once until the name
  /// resolves again. Ignored for a name follow() does not track (a lookup that outlived its config).
  void store(std::string_view host, const std::vector<net::ip::address>& found);
  /// The tracked names, for the lookups that fill the table.
  std::vector<std::string> names() const;
  reader read() const { return reader(*this); }

 private:
  struct entry {
    std::string host;
    std::vector<config::ip_address> addresses;  ///< folded; empty until resolved, or when it does not
    bool looked_up = false;                     ///< store() was called for it at least once
  };
  /// The entry of `host` in `entries` (entries_ needs mu_ held), or nullptr.
  template <class Entries>
  static auto* find(Entries& entries, std::string_view host) noexcept;
  mutable std::shared_mutex mu_;
  std::vector<entry> entries_;
};

/// Every address `host` resolves to through the system resolver, in its order (empty when it does
/// not resolve), without blocking the calling thread. An IP literal is its own one address.
net::awaitable<std::vector<net::ip::address>> lookup_host(std::string host);

/// At start, before listeners open: resolves every name `table` tracks, each on a thread of its
/// own, and stores the answers given within `limit`. Returns the names still unanswered then (their
/// threads finish on their own; their answers are dropped), to be looked up again with lookup_host().
std::vector<std::string> resolve_within(backend_addresses& table, std::chrono::milliseconds limit);

}  // namespace edgerelay::proxy
