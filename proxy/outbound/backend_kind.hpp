// What a backend kind adds to a session: chosen by the backend's `kind`, so the pipeline has no
// per-kind branches. The plain TCP kind leases egress addresses; feature folders (sql602/) add more.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "proxy/observe/outcome.hpp"
#include "proxy/outbound/backend_state.hpp"
#include "proxy/outbound/connector.hpp"

namespace edgerelay::proxy {

/// What became of a break a tunnel door received in-band for its session.
enum class break_result : std::uint8_t {
  sent,           ///< on its way to the backend, naming this session
  not_breakable,  ///< the backend's kind has no breaks (not sql602), or the session cannot be named
  too_soon,       ///< the session's last break was too recent (breaks are rate-limited per session)
  failed,         ///< the datagram could not be sent
};

/// What a session to a backend holds for its lifetime beyond its sockets (an egress address, a
/// break registration); destroying it gives everything back.
class backend_hold {
 public:
  virtual ~backend_hold() = default;
  /// A break for this session, asked for in-band by its client (a tunnel door's break control):
  /// the kind sends it the way its server understands. Synchronous and never blocking (a single
  /// datagram), so it can be called from a read loop; on the session's own executor only.
  virtual break_result send_break() { return break_result::not_breakable; }
};

/// Sessions whose breaks travel in-band to the gateway (edgerelay client's sessions over a
/// tunnel), for a listener's UDP door to find as the 602SQL server would. Thread-safe.
class inband_break_sessions {
 public:
  virtual ~inband_break_sessions() = default;
  /// Registers the live session of `client` through `listener` (to `backend`; empty when it named
  /// a host). Its breaks are `sender->send_break()`, called on `where` only. The hold returned
  /// owns `sender` and unregisters the session when destroyed, on `where`.
  virtual std::unique_ptr<backend_hold> add_inband(const config::ip_address& client, std::string backend,
                                                   std::string listener, net::any_io_executor where,
                                                   std::unique_ptr<backend_hold> sender) = 0;
};

/// Who a backend session is, for the hooks: the client as accepted and the listener.
struct backend_session {
  const config::backend_config& backend;
  config::ip_address client;
  std::string_view client_text;  ///< for log lines
  std::string_view listener;
};

/// One backend kind's behaviour. Implementations are immutable after construction and called
/// from every worker thread at once.
class backend_kind {
 public:
  virtual ~backend_kind() = default;
  /// Before the dial: what the session holds until it ends, and how the dial binds its source.
  virtual std::unique_ptr<backend_hold> before_dial(const backend_session& s, dial_options& opts) const = 0;
  /// After the upstream connected from `local` to `server`; `hold` is what before_dial returned.
  virtual void on_connected(const backend_session& s, const config::ip_address& local, const net::ip::address& server,
                            backend_hold* hold) const = 0;
  /// What a forward door sends its client itself when the session cannot be had (the outcome
  /// says why), before closing; empty: close without a word.
  virtual std::vector<std::uint8_t> door_refusal(outcome why) const = 0;
};

/// Plain TCP backends: one egress address per session while the backend's pool has one free.
class tcp_backend_kind : public backend_kind {
 public:
  explicit tcp_backend_kind(egress_pools& egress) : egress_(&egress) {}
  std::unique_ptr<backend_hold> before_dial(const backend_session& s, dial_options& opts) const override;
  void on_connected(const backend_session&, const config::ip_address&, const net::ip::address&,
                    backend_hold*) const override {}
  std::vector<std::uint8_t> door_refusal(outcome) const override { return {}; }

 protected:
  /// The egress lease (empty when the backend has no egress or its pool is exhausted).
  class egress_hold : public backend_hold {
   public:
    egress_pools::lease egress;
  };
  /// Fills `hold.egress` and `opts.bind`; `exhausted_note` ends the warning logged when no
  /// address is free (what the kind loses then).
  void lease_egress(const backend_session& s, dial_options& opts, egress_hold& hold,
                    std::string_view exhausted_note) const;

 private:
  egress_pools* egress_;
};

/// The kinds of this process, looked up by config::backend_kind. Immutable once built.
class backend_kinds {
 public:
  /// Every kind starts as `fallback` (which must outlive this object).
  explicit backend_kinds(const backend_kind& fallback) { slots_.fill(&fallback); }
  void set(config::backend_kind k, const backend_kind& impl) { slots_[static_cast<std::size_t>(k)] = &impl; }
  const backend_kind& of(config::backend_kind k) const noexcept { return *slots_[static_cast<std::size_t>(k)]; }

 private:
  std::array<const backend_kind*, 2> slots_{};
};

}  // namespace edgerelay::proxy
