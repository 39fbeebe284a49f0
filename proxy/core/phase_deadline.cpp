// phase_deadline implementation.
#include "proxy/core/phase_deadline.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

namespace edgerelay::proxy {

void phase_deadline::start(std::chrono::milliseconds limit) {
  ++phase_;
  expired_ = false;
  timer_.expires_after(limit);  // a pending wait of the previous phase ends with operation_aborted
  ++pending_;
  timer_.async_wait([this, phase = phase_](const error_code& ec) {
    --pending_;
    // A handler queued just before the phase changed must not cut the next phase.
    if (ec || phase != phase_) {
      return;
    }
    expired_ = true;
    signal_.emit(net::cancellation_type::terminal);
    if (resolver_ != nullptr) {
      resolver_->cancel();
    }
  });
}

void phase_deadline::stop() {
  ++phase_;
  timer_.cancel();
}

net::awaitable<void> phase_deadline::settle() {
  stop();
  while (pending_ > 0) {
    co_await net::post(co_await net::this_coro::executor, net::use_awaitable);
  }
}

}  // namespace edgerelay::proxy
