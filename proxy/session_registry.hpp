// Per-worker list of live sessions, so shutdown can close what is still open. Single-threaded.
#pragma once

#include <cstddef>

#include "proxy/asio.hpp"

namespace edgerelay::proxy {

class session_registry {
 public:
  /// Lives in a session's coroutine frame: registered for its whole life, no allocation.
  class entry {
   public:
    entry(session_registry& registry, tcp::socket& client, tcp::socket& upstream) noexcept;
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;
    ~entry();

   private:
    friend class session_registry;
    session_registry& registry_;
    tcp::socket& client_;
    tcp::socket& upstream_;
    entry* prev_ = nullptr;
    entry* next_ = nullptr;
  };

  /// Closes both legs of every live session; their pending operations end with operation_aborted.
  void close_all() noexcept;
  std::size_t size() const noexcept { return size_; }

 private:
  entry* head_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace edgerelay::proxy
