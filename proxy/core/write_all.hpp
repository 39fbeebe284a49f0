// write_all(): a whole buffer to a stream, as a result instead of an exception (for with_deadline).
#pragma once

#include <cstdint>
#include <vector>

#include <boost/asio/write.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// True when every byte was written to `s` (a socket or a client_stream). Owns `bytes` for the
/// duration of the write. Never throws.
template <class Stream>
net::awaitable<bool> write_all(Stream& s, std::vector<std::uint8_t> bytes) {
  try {
    auto [ec, n] = co_await net::async_write(s, net::buffer(bytes), use_ec);
    co_return !ec;
  } catch (const std::exception&) {
    co_return false;  // cancelled by a deadline
  }
}

}  // namespace edgerelay::proxy
