// write_all(): a whole buffer to a stream as one phase of a phase_deadline, as a result.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include <boost/asio/write.hpp>

#include "proxy/core/asio.hpp"
#include "proxy/core/phase_deadline.hpp"

namespace edgerelay::proxy {

/// True when every byte of `bytes` was written to `s` (a socket or a client_stream) within `limit`,
/// a phase of `dl` that ends with the write. Never throws.
template <class Stream>
net::awaitable<bool> write_all(Stream& s, std::span<const std::uint8_t> bytes, phase_deadline& dl,
                               std::chrono::milliseconds limit) {
  dl.start(limit);
  auto [ec, n] = co_await net::async_write(s, net::buffer(bytes.data(), bytes.size()), dl.token());
  dl.stop();
  co_return !ec;
}

}  // namespace edgerelay::proxy
