// sleep_for(): a timer wait for the runtime's short pauses (accept back-off, drain polling).
#pragma once

#include <chrono>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// Sleeps for `d` and returns; never throws (a cancelled wait simply returns early).
net::awaitable<void> sleep_for(std::chrono::milliseconds d);

}  // namespace edgerelay::proxy
