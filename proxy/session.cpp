// The session pipeline: detect -> handshake -> decide -> dial -> reply -> relay -> access log.
//
// The handshake runs in short-lived coroutines under their deadlines, so their frames (parser,
// read buffer) are gone before the long relay starts; an idle tunnel keeps only this frame and
// the relay operation.
#include "proxy/session.hpp"

#include <array>
#include <optional>
#include <span>
#include <vector>

#include <boost/asio/write.hpp>

#include "proxy/access_log.hpp"
#include "proxy/connector.hpp"
#include "proxy/deadline.hpp"
#include "proxy/detect.hpp"
#include "proxy/log.hpp"
#include "proxy/relay.hpp"
#include "socks/server.hpp"

namespace edgerelay::proxy {
namespace {

using std::chrono::milliseconds;

bool listener_speaks(const config::listener_config& l, config::protocol p) {
  return std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end();
}

/// The outcome a closing SOCKS reply stands for (auth status, method refusal or error reply).
outcome outcome_of_closing_reply(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() == 8 && bytes[0] == 0x00) {  // SOCKS4 reply
    return bytes[1] == static_cast<std::uint8_t>(socks::socks4_reply::bad_user) ? outcome::bad_credentials
                                                                               : outcome::malformed;
  }
  if (bytes.size() == 2) {  // method selection 05 FF, or RFC 1929 status 01 01
    return outcome::bad_credentials;
  }
  if (bytes.size() >= 2 && bytes[0] == socks::socks5_version) {
    switch (static_cast<socks::reply_code>(bytes[1])) {
      case socks::reply_code::command_not_supported: return outcome::command_not_supported;
      case socks::reply_code::address_type_not_supported: return outcome::address_type_not_supported;
      default: return outcome::malformed;
    }
  }
  return outcome::malformed;
}

/// Result of the handshake phase: the client's request, or why there is none.
struct negotiation {
  std::optional<socks::step::connect> request;
  outcome failure = outcome::malformed;
};

bool check_credentials(const session_context& ctx, const std::string& user, const std::string& password) {
  for (const auto& u : ctx.snapshot->cfg.users) {
    if (u.name == user) {
      return ctx.services->passwords.check(u.name, u.password_hash, password);
    }
  }
  return false;
}

/// Reads and answers the SOCKS greeting, authentication and request. Never throws.
net::awaitable<negotiation> negotiate(tcp::socket& client, socks::socks_server& machine, const session_context& ctx,
                                      access_record& rec) {
  negotiation out;
  try {
    std::array<std::uint8_t, 2048> buf;
    auto [ec, n] = co_await client.async_read_some(net::buffer(buf), use_ec);
    if (ec || n == 0) {
      co_return out;
    }
    const std::span<const std::uint8_t> first(buf.data(), n);
    switch (detect_protocol(first)) {
      case detected::socks5:
        rec.protocol = "socks5";
        break;
      case detected::socks4:
        rec.protocol = "socks4";
        break;
      case detected::http:
        rec.protocol = "http";
        co_return out;
      case detected::tls:
        rec.protocol = "tls";
        co_return out;
      default:
        co_return out;
    }
    socks::step_t step = machine.feed(first);
    for (;;) {
      if (std::holds_alternative<socks::step::need_more>(step)) {
        auto [rec_ec, got] = co_await client.async_read_some(net::buffer(buf), use_ec);
        if (rec_ec || got == 0) {
          co_return out;
        }
        step = machine.feed(std::span<const std::uint8_t>(buf.data(), got));
      } else if (auto* send = std::get_if<socks::step::send>(&step)) {
        auto [wec, written] = co_await net::async_write(client, net::buffer(send->bytes), use_ec);
        if (wec || send->close_after) {
          out.failure = wec ? outcome::general_failure : outcome_of_closing_reply(send->bytes);
          co_return out;
        }
        step = machine.feed({});
      } else if (auto* auth = std::get_if<socks::step::authenticate>(&step)) {
        const bool ok = check_credentials(ctx, auth->user, auth->password);
        rec.user = auth->user;
        step = machine.on_auth(ok);
      } else if (auto* req = std::get_if<socks::step::connect>(&step)) {
        out.request = std::move(*req);
        co_return out;
      } else {
        co_return out;  // failed: nothing can be replied
      }
    }
  } catch (const std::exception& e) {
    log::debug("session", "handshake ended: ", e.what());
  }
  co_return out;
}

net::awaitable<bool> write_reply(tcp::socket& client, std::vector<std::uint8_t> bytes) {
  try {
    auto [ec, n] = co_await net::async_write(client, net::buffer(bytes), use_ec);
    co_return !ec;
  } catch (const std::exception&) {
    co_return false;
  }
}

net::awaitable<bool> write_leftover(tcp::socket& upstream, std::vector<std::uint8_t> bytes) {
  try {
    auto [ec, n] = co_await net::async_write(upstream, net::buffer(bytes), use_ec);
    co_return !ec;
  } catch (const std::exception&) {
    co_return false;
  }
}

socks::bound_address bound_of(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.local_endpoint(ec);
  socks::bound_address b;
  if (ec) {
    return b;
  }
  b.port = ep.port();
  const auto a = ep.address();
  if (a.is_v4()) {
    b.host = a.to_v4().to_bytes();
  } else if (a.to_v6().is_v4_mapped()) {
    b.host = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).to_bytes();
  } else {
    b.host = a.to_v6().to_bytes();
  }
  return b;
}

/// Everything before the relay. On success `upstream` is connected and leftover client bytes have
/// been delivered to it.
net::awaitable<bool> front_end(tcp::socket& client, tcp::socket& upstream, const session_context& ctx,
                               access_record& rec) {
  const config::listener_config& listener = *ctx.listener;
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  socks::socks_server machine(socks::server_options{
      .accept_socks5 = listener_speaks(listener, config::protocol::socks5),
      .accept_socks4 = listener_speaks(listener, config::protocol::socks4),
      .require_password = listener.auth == config::auth_mode::password,
  });

  auto negotiated = co_await with_deadline(negotiate(client, machine, ctx, rec), limits.handshake_timeout);
  if (!negotiated) {
    rec.result = outcome::handshake_timeout;
    co_return false;
  }
  if (!negotiated->request) {
    rec.result = negotiated->failure;
    co_return false;
  }
  const socks::step::connect& request = *negotiated->request;
  rec.target = socks::to_string(request.target);
  if (machine.protocol_version() == socks::version::v4) {
    rec.user = request.user;
  }

  if (request.cmd != socks::command::connect) {
    rec.result = outcome::command_not_supported;
    auto reply = machine.on_connect(socks::reply_code::command_not_supported, {});
    if (auto* send = std::get_if<socks::step::send>(&reply)) {
      co_await with_deadline(write_reply(client, std::move(send->bytes)), limits.handshake_timeout);
    }
    co_return false;
  }

  error_code ec;
  const tcp::endpoint peer = client.remote_endpoint(ec);
  const dial_identity who{to_config_address(peer.address()), rec.user, listener.name};
  auto dialled = co_await with_deadline(dial(ctx.snapshot->pol, who, from_socks(request.target)),
                                        limits.connect_timeout);
  outcome result = outcome::connect_timeout;
  if (dialled) {
    result = dialled->result;
    rec.rule = std::move(dialled->rule);
    if (dialled->dialled.port() != 0) {
      rec.dialled = to_string(dialled->dialled);
    }
  }
  rec.result = result;

  const socks::bound_address bound =
      result == outcome::success ? bound_of(*dialled->socket) : socks::bound_address{};
  auto reply = machine.on_connect(to_socks5_reply(result), bound);
  auto* send = std::get_if<socks::step::send>(&reply);
  if (send == nullptr) {
    rec.result = outcome::general_failure;
    co_return false;
  }
  const auto written = co_await with_deadline(write_reply(client, std::move(send->bytes)), limits.handshake_timeout);
  if (result != outcome::success) {
    co_return false;
  }
  if (!written || !*written) {
    rec.result = outcome::general_failure;
    rec.detail = "client_gone";
    co_return false;
  }
  upstream = std::move(*dialled->socket);
  const auto leftover = machine.leftover();
  if (!leftover.empty()) {
    rec.bytes_up += leftover.size();
    auto delivered = co_await with_deadline(
        write_leftover(upstream, std::vector<std::uint8_t>(leftover.begin(), leftover.end())),
        limits.idle_timeout);
    if (!delivered || !*delivered) {
      rec.detail = "upstream_gone";
      co_return false;
    }
  }
  co_return true;
}

}  // namespace

net::awaitable<void> run_session(tcp::socket client, session_context ctx) {
  access_record rec;
  rec.listener = ctx.listener->name;
  {
    error_code ec;
    const auto peer = client.remote_endpoint(ec);
    if (!ec) {
      rec.client = to_string(peer);
    }
  }
  tcp::socket upstream(client.get_executor());
  session_registry::entry registered(ctx.services->registry, client, upstream);
  try {
    if (co_await front_end(client, upstream, ctx, rec)) {
      relay_options opts{.idle_timeout = ctx.snapshot->cfg.limits.idle_timeout, .use_splice = true};
      const relay_result r = co_await async_relay(client, upstream, ctx.services->pools, opts, net::use_awaitable);
      rec.bytes_up += r.bytes_up;
      rec.bytes_down += r.bytes_down;
      if (r.end != relay_end::closed) {
        rec.detail = to_string(r.end);
      }
    }
  } catch (const std::exception& e) {
    rec.result = outcome::general_failure;
    log::error("session", "session from ", rec.client, " failed: ", e.what());
  }
  error_code ignored;
  client.close(ignored);
  upstream.close(ignored);
  if (ctx.snapshot->cfg.log.access_json) {
    write_access_line(rec);
  }
}

}  // namespace edgerelay::proxy
