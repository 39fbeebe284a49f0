// Non-CONNECT HTTP requests on a proxy listener: the 602SQL tunnel when the listener has one and
// the first request looks like it (602sql-wire 6.1), else forward proxying and the fallback.
#include "proxy/http_serve.hpp"

#include <array>
#include <optional>
#include <string>
#include <utility>

#include "proxy/deadline.hpp"
#include "proxy/http_forward.hpp"
#include "proxy/log.hpp"
#include "proxy/sql602_tunnel.hpp"
#include "tunnel/sql602_codec.hpp"

namespace edgerelay::proxy {
namespace {

/// One more read of the client, appended to `have` (empty result: the client closed). Never throws.
net::awaitable<std::vector<std::uint8_t>> read_more(tunnel::client_stream& client, std::vector<std::uint8_t> have) {
  try {
    std::array<std::uint8_t, 4096> buf;
    auto [ec, n] = co_await client.async_read_some(net::buffer(buf), use_ec);
    if (ec || n == 0) {
      co_return std::vector<std::uint8_t>{};
    }
    have.insert(have.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  } catch (const std::exception&) {
    have.clear();
  }
  co_return have;
}

/// The tunnel client's byte stream from its first request on, for the client translator: the
/// first head was consumed by the session's reader, so its equivalent is put back in front of the
/// body bytes (a tunnel head carries nothing but its Content-Length, 602sql-wire 5.2).
std::vector<std::uint8_t> replay_first_request(const tunnel::request_head& head, const std::vector<std::uint8_t>& body) {
  const std::string text = "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(*head.content_length) + "\r\n\r\n";
  std::vector<std::uint8_t> out(text.begin(), text.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

net::awaitable<void> serve_http(tunnel::client_stream& client, tunnel::request_head first, std::vector<std::uint8_t> leftover,
                                const session_context& ctx, access_record& rec) {
  try {
    const config::config& cfg = ctx.snapshot->cfg;
    const config::backend_config* sql = ctx.snapshot->find_backend(ctx.listener->sql602_tunnel);
    if (sql != nullptr && first.form == tunnel::target_form::origin) {
      auto kind = tunnel::sql602::detect_tunnel(first, leftover);
      if (kind == tunnel::sql602::detect_result::need_more) {
        auto more = co_await with_deadline(read_more(client, std::move(leftover)), cfg.limits.handshake_timeout);
        if (!more || more->empty()) {
          rec.result = more ? outcome::malformed : outcome::handshake_timeout;
          co_return;
        }
        leftover = std::move(*more);
        kind = tunnel::sql602::detect_tunnel(first, leftover);
      }
      if (kind == tunnel::sql602::detect_result::tunnel) {
        co_await serve_sql602_tunnel(client, *sql, replay_first_request(first, leftover), ctx, rec);
        co_return;
      }
    }
    co_await serve_requests(client, std::move(first), std::move(leftover), ctx, rec);
  } catch (const std::exception& e) {
    rec.result = outcome::general_failure;
    log::error("http", "request from ", rec.client, " failed: ", e.what());
  }
}

}  // namespace edgerelay::proxy
