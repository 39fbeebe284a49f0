// The 602SQL backend kind and HTTP tunnel door.
#include "sql602/runtime/hooks.hpp"

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "proxy/core/phase_deadline.hpp"
#include "sql602/codec.hpp"
#include "sql602/udp_codec.hpp"
#include "proxy/observe/log.hpp"
#include "sql602/runtime/http_tunnel.hpp"
#include "sql602/runtime/udp_door.hpp"

namespace edgerelay::proxy {

std::unique_ptr<backend_hold> sql602_backend_kind::before_dial(const backend_session& s, dial_options& opts) const {
  auto hold = std::make_unique<sql602_hold>();
  lease_egress(s, opts, *hold, ", so its breaks may be misdirected");
  return hold;
}

void sql602_backend_kind::on_connected(const backend_session& s, const config::ip_address& local,
                                       const net::ip::address& server, backend_hold* hold) const {
  if (auto* h = dynamic_cast<sql602_hold*>(hold)) {
    h->breaks = breaks_->add(s.client, local, s.backend.name, std::string(s.listener));
    h->local = local;
    h->server = server;
    h->portbase = s.backend.portbase;
    h->backend = s.backend.name;
  }
}

break_result sql602_backend_kind::sql602_hold::send_break() {
  // The server acts on one break per running request and clears it at the next request
  // (docs/602sql.md), so a client repeating itself gains nothing; the limit keeps a tunnel
  // client from turning one session into a datagram stream towards the server.
  constexpr auto min_interval = std::chrono::milliseconds(500);
  if (!local || local->v6 ||
      !tunnel::sql602::breakable({local->bytes[0], local->bytes[1], local->bytes[2], local->bytes[3]})) {
    return break_result::not_breakable;  // the server could not match it to any session
  }
  const auto now = std::chrono::steady_clock::now();
  if (last_break != std::chrono::steady_clock::time_point{} && now - last_break < min_interval) {
    return break_result::too_soon;
  }
  last_break = now;
  const std::string failed = send_break_datagram(server, portbase, *local);
  if (!failed.empty()) {
    log::debug("sql602", "in-band break for backend '", backend, "' not sent: ", failed);
    return break_result::failed;
  }
  return break_result::sent;
}

std::vector<std::uint8_t> sql602_backend_kind::door_refusal(outcome why) const {
  namespace sql602 = tunnel::sql602;
  return sql602::connresult_frame(why == outcome::denied ? sql602::kse_ip_filter : sql602::kse_connection);
}

namespace {

/// One more read of the client within `limit`, appended to `have`; nullopt when `limit` passed,
/// empty when the client closed or the read failed.
net::awaitable<std::optional<std::vector<std::uint8_t>>> read_more(tunnel::client_stream& client,
                                                                   std::vector<std::uint8_t> have,
                                                                   std::chrono::milliseconds limit) {
  std::array<std::uint8_t, 4096> buf;
  phase_deadline dl(client.get_executor());
  dl.start(limit);
  auto [ec, n] = co_await client.async_read_some(net::buffer(buf), dl.token());
  const bool expired = dl.expired();
  co_await dl.settle();  // no timer handler may outlive `dl`
  if (!ec && n > 0) {
    // Bytes that arrived as the limit passed still count.
    have.insert(have.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    co_return have;
  }
  if (expired) {
    co_return std::nullopt;
  }
  co_return std::vector<std::uint8_t>{};
}

/// The tunnel client's byte stream from its first request on, for the client translator: the
/// first head was consumed by the session's reader, so its equivalent is put back in front of the
/// body bytes (a tunnel head carries nothing but its Content-Length; docs/602sql.md, HTTP tunnel).
std::vector<std::uint8_t> replay_first_request(const tunnel::request_head& head,
                                               const std::vector<std::uint8_t>& body) {
  const std::string text = "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(*head.content_length) + "\r\n\r\n";
  std::vector<std::uint8_t> out(text.begin(), text.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

net::awaitable<bool> sql602_http_door::serve(tunnel::client_stream& client, const tunnel::request_head& first,
                                             std::vector<std::uint8_t>& leftover, const session_context& ctx,
                                             access_record& rec) const {
  const config::backend_config* sql = ctx.snapshot->find_backend(ctx.listener->sql602_tunnel);
  if (sql == nullptr || first.form != tunnel::target_form::origin) {
    co_return false;
  }
  auto kind = tunnel::sql602::detect_tunnel(first, leftover);
  if (kind == tunnel::sql602::detect_result::need_more) {
    auto more = co_await read_more(client, std::move(leftover), ctx.snapshot->cfg.limits.handshake_timeout);
    if (!more || more->empty()) {
      rec.result = more ? outcome::malformed : outcome::handshake_timeout;
      co_return true;
    }
    leftover = std::move(*more);
    kind = tunnel::sql602::detect_tunnel(first, leftover);
  }
  if (kind != tunnel::sql602::detect_result::tunnel) {
    co_return false;
  }
  co_await serve_sql602_tunnel(client, *sql, replay_first_request(first, leftover), ctx, rec);
  co_return true;
}

}  // namespace edgerelay::proxy
