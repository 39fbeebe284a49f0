// The non-throwing building blocks of the short phases: a timer wait and a whole write.
#include "proxy/deadline.hpp"

#include <boost/asio/write.hpp>

#include "proxy/write_all.hpp"

namespace edgerelay::proxy {

net::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(d);
  co_await timer.async_wait(use_ec);
}

net::awaitable<bool> write_all(tcp::socket& s, std::vector<std::uint8_t> bytes) {
  try {
    auto [ec, n] = co_await net::async_write(s, net::buffer(bytes), use_ec);
    co_return !ec;
  } catch (const std::exception&) {
    co_return false;  // cancelled by a deadline
  }
}

}  // namespace edgerelay::proxy
