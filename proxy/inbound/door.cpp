// front_door::open(): detection, the listener's TLS, and the choice of door.
#include "proxy/inbound/door.hpp"

#include <algorithm>
#include <array>

#include "proxy/inbound/tls_accept.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/backend_kind.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::proxy {
namespace {

bool listener_speaks(const config::listener_config& l, config::protocol p) {
  return std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end();
}

socks::server_options socks_options_of(const config::listener_config& l) {
  return socks::server_options{
      .accept_socks5 = listener_speaks(l, config::protocol::socks5),
      .accept_socks4 = listener_speaks(l, config::protocol::socks4),
      .require_password = l.auth == config::auth_mode::password,
  };
}

}  // namespace

target from_authority(const tunnel::authority_target& a) {
  target t;
  error_code ec;
  const auto address = net::ip::make_address(a.host, ec);
  if (ec) {
    t.host = a.host;
  } else {
    t.address = address;
  }
  t.port = a.port;
  return t;
}

front_door::front_door(const session_context& ctx)
    : ctx_(ctx), forward_(ctx.snapshot->find_backend(ctx.listener->forward)), socks_(socks_options_of(*ctx.listener)) {}

net::awaitable<door_result> front_door::open(tunnel::client_stream& client, access_record& rec, phase_deadline& dl) {
  if (forward_ != nullptr) {
    co_return co_await open_forward(client, rec, dl);
  }
  std::array<std::uint8_t, 2048> buf;
  auto [ec, n] = co_await client.async_read_some(net::buffer(buf), dl.token());
  if (ec || n == 0) {
    co_return door_closed{};
  }
  std::span<const std::uint8_t> first(buf.data(), n);
  kind_ = detect_protocol(first);
  const config::listener_config& l = *ctx_.listener;
  if (net::ssl::context* tls = ctx_.snapshot->tls_of(l)) {
    if (kind_ == detected::tls) {
      if (!co_await accept_tls(client, *tls, first, ctx_, rec, dl)) {
        rec.protocol = "tls";
        co_return door_closed{outcome::tls_failed};
      }
      auto [inner_ec, inner_n] = co_await client.async_read_some(net::buffer(buf), dl.token());
      if (inner_ec || inner_n == 0) {
        co_return door_closed{};
      }
      first = std::span<const std::uint8_t>(buf.data(), inner_n);
      kind_ = detect_protocol(first);
    } else if (l.tls->required) {
      co_return door_closed{outcome::tls_required};
    }
  }
  switch (kind_) {
    case detected::socks5:
    case detected::socks4: {
      const bool v5 = kind_ == detected::socks5;
      rec.protocol = v5 ? "socks5" : "socks4";
      if (listener_speaks(l, v5 ? config::protocol::socks5 : config::protocol::socks4)) {
        co_return co_await negotiate_socks(client, first, rec, dl);
      }
      break;
    }
    case detected::http:
      rec.protocol = "http";
      if (listener_speaks(l, config::protocol::http) || listener_speaks(l, config::protocol::websocket) ||
          listener_speaks(l, config::protocol::polling)) {
        co_return co_await negotiate_connect(client, first, rec, dl);
      }
      break;
    case detected::tls: rec.protocol = "tls"; break;
    default: break;
  }
  co_return door_closed{};
}

/// A forward door: no handshake, every session goes to the backend once the rules allow it.
net::awaitable<door_result> front_door::open_forward(tunnel::client_stream& client, access_record& rec,
                                                     phase_deadline& dl) {
  rec.protocol = "forward";
  if (net::ssl::context* tls = ctx_.snapshot->tls_of(*ctx_.listener)) {
    // Always TLS: the server of a forward door may speak first, so waiting for the client's first
    // byte to tell TLS from plaintext could wait forever.
    if (!co_await accept_tls(client, *tls, {}, ctx_, rec, dl)) {
      co_return door_closed{outcome::tls_failed};
    }
  } else {
    error_code ignored;
    client.socket().non_blocking(true, ignored);  // no handshake read made it so; the relay needs it
  }
  request r;
  r.where = backend_target(*forward_);
  rec.target = concat(forward_->name, ':', r.where.port);
  co_return r;
}

door_reply front_door::answer(outcome result, const tcp::socket* upstream) {
  if (forward_ != nullptr) {
    // The forward door's client asked nothing, so success needs no word; a refusal is the
    // backend kind's (the 602SQL connect-result byte), or silence.
    if (result == outcome::success) {
      return door_reply{.bytes = {}, .owed = false};
    }
    return door_reply{.bytes = ctx_.services->kinds->of(forward_->kind).door_refusal(result), .owed = false};
  }
  if (kind_ == detected::http) {
    return door_reply{.bytes = result == outcome::success ? tunnel::connect_established_reply()
                                                          : tunnel::error_reply(to_http_status(result))};
  }
  return socks_answer(result, upstream);
}

std::span<const std::uint8_t> front_door::leftover() const {
  if (forward_ != nullptr) {
    return {};
  }
  return kind_ == detected::http ? http_->leftover() : socks_.leftover();
}

}  // namespace edgerelay::proxy
