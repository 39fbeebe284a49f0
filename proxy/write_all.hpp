// write_all(): a whole buffer to a socket, as a result instead of an exception (for with_deadline).
#pragma once

#include <cstdint>
#include <vector>

#include "proxy/asio.hpp"

namespace edgerelay::proxy {

/// True when every byte was written. Owns `bytes` for the duration of the write. Never throws.
net::awaitable<bool> write_all(tcp::socket& s, std::vector<std::uint8_t> bytes);

}  // namespace edgerelay::proxy
