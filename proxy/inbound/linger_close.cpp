// reply_and_close(): write, half-close, drain (bounded), for every door and every HTTP refusal.
#include "proxy/inbound/linger_close.hpp"

#include <algorithm>
#include <array>

#include "proxy/core/write_all.hpp"

namespace edgerelay::proxy {
namespace {

/// Reads and drops what the client sends until EOF, an error, the phase's end or the byte bound.
net::awaitable<void> drain(tunnel::client_stream& client, phase_deadline& dl) {
  std::array<std::uint8_t, 4096> buf;
  std::size_t total = 0;
  while (total < linger_max_bytes) {
    auto [ec, n] = co_await client.async_read_some(net::buffer(buf), dl.token());
    if (ec || n == 0) {
      co_return;
    }
    total += n;
  }
}

}  // namespace

net::awaitable<void> reply_and_close(tunnel::client_stream& client, std::vector<std::uint8_t> reply, phase_deadline& dl,
                                     std::chrono::milliseconds limit) {
  // Each co_await is its own statement: GCC 12 miscompiles one inside a short-circuit condition.
  if (!reply.empty()) {
    const bool written = co_await write_all(client, reply, dl, limit);
    if (!written) {
      co_return;
    }
  }
  const error_code shut = co_await client.shutdown_send(limit);
  if (shut) {
    co_return;
  }
  dl.start(std::min(limit, linger_max_time));
  co_await drain(client, dl);
  dl.stop();
}

}  // namespace edgerelay::proxy
