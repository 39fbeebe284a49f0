// The HTTP door: CONNECT becomes a request; any other request is handed to serve_http().
#include <algorithm>
#include <array>

#include "proxy/inbound/credentials.hpp"
#include "proxy/inbound/door.hpp"
#include "proxy/inbound/polling_door.hpp"
#include "proxy/inbound/websocket_door.hpp"

namespace edgerelay::proxy {

net::awaitable<door_result> front_door::negotiate_connect(tunnel::client_stream& client,
                                                          std::span<const std::uint8_t> first, access_record& rec,
                                                          phase_deadline& dl) {
  std::array<std::uint8_t, 4096> buf;
  auto& reader = http_.emplace();
  tunnel::head_result result = reader.feed(first);
  while (std::holds_alternative<tunnel::need_more>(result)) {
    auto [ec, got] = co_await client.async_read_some(net::buffer(buf), dl.token());
    if (ec || got == 0) co_return door_closed{};
    result = reader.feed(std::span<const std::uint8_t>(buf.data(), got));
  }
  door_closed refused;
  if (auto* err = std::get_if<tunnel::http_error>(&result)) {
    refused.why = outcome_of_http_refusal(err->status);
    refused.refusal = std::move(err->reply);
  } else {
    tunnel::request_head& head = std::get<tunnel::parsed<tunnel::request_head>>(result).value;
    rec.target = head.target;
    const auto& protocols = ctx_.listener->protocols;
    const bool speaks_websocket =
        std::find(protocols.begin(), protocols.end(), config::protocol::websocket) != protocols.end();
    if (speaks_websocket && is_websocket_upgrade(head)) {
      co_return co_await open_websocket(ctx_, client, std::move(head), reader.leftover(), rec, dl);
    }
    if (is_polling_request(ctx_, head)) {
      co_return co_await open_polling(ctx_, client, std::move(head), reader.leftover(), rec, dl);
    }
    if (std::find(protocols.begin(), protocols.end(), config::protocol::http) == protocols.end()) {
      if (!speaks_websocket) {
        rec.protocol = "polling";
        co_return door_closed{outcome::malformed, websocket_error_reply(404, outcome::malformed,
                                                                        "this listener takes polling requests only")};
      }
      // A WebSocket-only listener: no proxying, no tunnel POSTs.
      rec.protocol = "websocket";
      co_return door_closed{outcome::malformed, websocket_error_reply(426, outcome::malformed,
                                                                      "this listener takes WebSocket upgrades only")};
    }
    if (!head.is_connect()) {
      // Forward proxying, the 602SQL tunnel or the fallback: serve_http() takes the connection over.
      co_return http_handoff{std::move(head)};
    }
    const bool authorized = co_await http_proxy_authorized(ctx_, head, rec);
    if (authorized) {
      rec.target = tunnel::to_string(head.authority);
      co_return request{.cmd = socks::command::connect, .where = from_authority(head.authority), .client_leg = nullptr};
    }
    refused.why = outcome::bad_credentials;
    refused.refusal = tunnel::error_reply(407);
  }
  co_return refused;
}

}  // namespace edgerelay::proxy
