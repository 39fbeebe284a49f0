// Non-CONNECT HTTP requests on a proxy listener: a door extension when one takes the connection
// (the 602SQL tunnel), else forward proxying and the fallback.
#include "proxy/inbound/http_serve.hpp"

#include <utility>

#include "proxy/inbound/http_door_extension.hpp"
#include "proxy/inbound/http_forward.hpp"
#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {

net::awaitable<void> serve_http(tunnel::client_stream& client, tunnel::request_head first,
                                std::vector<std::uint8_t> leftover, const session_context& ctx, access_record& rec) {
  try {
    const http_door_extension* extension = ctx.services->http_extension;
    if (extension != nullptr && co_await extension->serve(client, first, leftover, ctx, rec)) {
      co_return;
    }
    co_await serve_requests(client, std::move(first), std::move(leftover), ctx, rec);
  } catch (const std::exception& e) {
    rec.result = outcome::general_failure;
    log::error("http", "request from ", rec.client, " failed: ", e.what());
  }
}

}  // namespace edgerelay::proxy
