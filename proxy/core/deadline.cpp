// The non-throwing building blocks of the short phases: a timer wait and a whole write.
#include "proxy/core/deadline.hpp"

namespace edgerelay::proxy {

net::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(d);
  co_await timer.async_wait(use_ec);
}

}  // namespace edgerelay::proxy
