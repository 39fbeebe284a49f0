// A door that lives beside forward proxying on a plain-HTTP listener (the 602SQL HTTP tunnel):
// offered each connection's first non-CONNECT request before forward proxying sees it.
#pragma once

#include <cstdint>
#include <vector>

#include "proxy/core/asio.hpp"
#include "proxy/core/context.hpp"
#include "proxy/observe/access_log.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

class http_door_extension {
 public:
  virtual ~http_door_extension() = default;
  /// True when the extension took the connection and served it to its end; false leaves it to
  /// forward proxying with `leftover` (the bytes read after `first`, possibly more than before).
  /// Applies its own deadlines. Never throws.
  virtual net::awaitable<bool> serve(tunnel::client_stream& client, const tunnel::request_head& first,
                                     std::vector<std::uint8_t>& leftover, const session_context& ctx,
                                     access_record& rec) const = 0;
};

}  // namespace edgerelay::proxy
