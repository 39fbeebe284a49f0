#include "proxy/core/sleep.hpp"

#include <boost/asio/this_coro.hpp>

namespace edgerelay::proxy {

net::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(d);
  co_await timer.async_wait(use_ec);
}

}  // namespace edgerelay::proxy
