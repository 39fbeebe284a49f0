// Non-CONNECT HTTP requests on a proxy listener.
#include "proxy/http_serve.hpp"

#include "proxy/deadline.hpp"
#include "proxy/write_all.hpp"

namespace edgerelay::proxy {

net::awaitable<void> serve_http(tcp::socket& client, tunnel::request_head first, std::vector<std::uint8_t>,
                                const session_context& ctx, access_record& rec) {
  const bool to_gateway = first.form == tunnel::target_form::origin || first.form == tunnel::target_form::asterisk;
  rec.result = to_gateway ? outcome::malformed : outcome::command_not_supported;
  rec.detail = to_gateway ? "not_a_proxy_request" : "method_not_supported";
  co_await with_deadline(write_all(client, tunnel::error_reply(to_gateway ? 404 : 405)),
                         ctx.snapshot->cfg.limits.handshake_timeout);
}

}  // namespace edgerelay::proxy
