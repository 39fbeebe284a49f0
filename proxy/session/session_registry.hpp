// Per-worker list of live sessions: shutdown closes what is still open, and a reload with
// `recheck_sessions` closes the tunnels the new rules deny. Single-threaded (the worker's thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "config/model.hpp"
#include "config/policy.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/outbound/connector.hpp"
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

   private:
    friend class session_registry;
    session_registry& registry_;
    tunnel::client_stream& client_;
    tunnel::client_stream& upstream_;
    access_record& record_;
    const session_identity& identity_;
    entry* prev_ = nullptr;
    entry* next_ = nullptr;
  };

  /// Closes both legs of every live session; their pending operations end with operation_aborted.
  void close_all() noexcept;

  /// Decides every established tunnel again under `policy` and closes those now denied, recording
  /// why in their access record. Returns how many were closed.
  std::size_t recheck(const config::policy& policy);

  std::size_t size() const noexcept { return size_; }

 private:
  entry* head_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace edgerelay::proxy
