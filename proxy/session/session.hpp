// run_session(): one client connection from accept to close.
#pragma once

#include "proxy/core/asio.hpp"
#include "proxy/core/context.hpp"

namespace edgerelay::proxy {

/// The session coroutine. Owns `client`; never throws out (errors are logged and end the session).
net::awaitable<void> run_session(tcp::socket client, session_context ctx);

}  // namespace edgerelay::proxy
