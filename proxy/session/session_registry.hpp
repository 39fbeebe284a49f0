// Per-worker list of live sessions: shutdown closes what is still open, and a reload with
// `recheck_sessions` closes the tunnels the new rules deny and has the UDP associations follow the
// new rules (closing those that relayed to a destination they deny). Single-threaded (the worker's
// thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "config/model.hpp"
#include "config/policy.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/snapshot.hpp"
#include "proxy/inbound/udp_associate.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/relay/message_leg.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

class session_registry {
 public:
  /// Lives in a session's coroutine frame: registered for its whole life, no allocation.
  class entry {
   public:
    entry(session_registry& registry, tunnel::client_stream& client, tunnel::client_stream& upstream,
          access_record& record, const session_identity& identity) noexcept;
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;
    ~entry();

    /// The session's message legs (a tunnel door's client, a gateway tunnel upstream), closed with
    /// the streams; either may be null. They must stay alive while attached.
    void attach(message_leg* client_leg, message_leg* upstream_leg) noexcept {
      client_leg_ = client_leg;
      upstream_leg_ = upstream_leg;
    }

   private:
    void close() noexcept;

    friend class session_registry;
    session_registry& registry_;
    tunnel::client_stream& client_;
    tunnel::client_stream& upstream_;
    access_record& record_;
    const session_identity& identity_;
    message_leg* client_leg_ = nullptr;
    message_leg* upstream_leg_ = nullptr;
    entry* prev_ = nullptr;
    entry* next_ = nullptr;
  };

  /// Closes both legs of every live session; their pending operations end with operation_aborted.
  void close_all() noexcept;

  /// Decides every established tunnel again under `now`'s rules and closes those now denied,
  /// recording why in their access record; every UDP association follows `now` from here on and
  /// is closed the same way when a destination it relayed to is now denied. Returns how many
  /// sessions were closed.
  std::size_t recheck(const std::shared_ptr<const runtime_snapshot>& now);

  std::size_t size() const noexcept { return size_; }

  /// Where the UDP associations of this worker list themselves (the sessions are listed here too:
  /// shutdown closes an association through its control connection).
  udp_associations& associations() noexcept { return associations_; }

 private:
  entry* head_ = nullptr;
  std::size_t size_ = 0;
  udp_associations associations_;
};

}  // namespace edgerelay::proxy
