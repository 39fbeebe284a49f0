#include "proxy/outbound/gateway/socks5_transport.hpp"

#include <utility>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/write.hpp>

#include "config/address.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/hops/hop.hpp"

namespace edgerelay::proxy::gateway {
namespace {

/// The SOCKS5 request for a "host:port" or "[v6]:port" target.
std::optional<hops::hop_target> socks_target_of(std::string_view target) {
  auto hp = config::parse_host_port(target);
  if (!hp) return std::nullopt;
  hops::hop_target t;
  t.port = hp->port;
  error_code ec;
  const auto address = net::ip::make_address(hp->host, ec);
  if (!ec) {
    t.address = address;
  } else {
    t.host = hp->host;
  }
  return t;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

}  // namespace

stream_leg::stream_leg(tunnel::client_stream stream) : stream_(std::move(stream)) {}

net::awaitable<std::pair<error_code, std::size_t>> stream_leg::read_some(net::mutable_buffer into,
                                                                         net::cancellation_slot slot) {
  if (slot.is_connected()) {
    auto [ec, n] = co_await stream_.async_read_some(into, net::bind_cancellation_slot(slot, use_ec));
    co_return std::pair{ec, n};
  }
  auto [ec, n] = co_await stream_.async_read_some(into, use_ec);
  co_return std::pair{ec, n};
}

net::awaitable<std::pair<error_code, std::size_t>> stream_leg::write(net::const_buffer bytes,
                                                                     net::cancellation_slot slot) {
  if (slot.is_connected()) {
    auto [ec, n] = co_await net::async_write(stream_, bytes, net::bind_cancellation_slot(slot, use_ec));
    co_return std::pair{ec, n};
  }
  auto [ec, n] = co_await net::async_write(stream_, bytes, use_ec);
  co_return std::pair{ec, n};
}

net::awaitable<error_code> stream_leg::shutdown_send() {
  co_return co_await stream_.shutdown_send();
}

void stream_leg::cancel(error_code& ec) noexcept {
  stream_.socket().cancel(ec);
}

void stream_leg::close() noexcept {
  stream_.close();
}

void stream_leg::send_break() noexcept {
  if (!break_logged_) {
    break_logged_ = true;
    log::warn("client", "a 602SQL break cannot cross the socks5 transport (no in-band control); use websocket");
  }
}

tunnel::client_stream stream_leg::take_stream() noexcept {
  return std::move(stream_);
}

socks5_transport::socks5_transport(std::string user, std::string password,
                                   std::map<std::string, std::uint16_t> backend_ports)
    : user_(std::move(user)), password_(std::move(password)), backend_ports_(std::move(backend_ports)) {}

net::awaitable<opened_tunnel> socks5_transport::open(const gateway_route& route, const tunnel_request& what,
                                                     phase_deadline& dl) const {
  opened_tunnel out;
  if (what.udp) {
    out.result = outcome::command_not_supported;
    out.failed_hop = "socks5";
    out.detail = "UDP does not cross the socks5 transport";
    co_return out;
  }
  std::optional<hops::hop_target> next;
  if (what.target.starts_with("backend:")) {
    // The gateway maps a SOCKS5 name equal to a backend's name to that backend.
    const std::string name = what.target.substr(8);
    if (const auto it = backend_ports_.find(lower(name)); it != backend_ports_.end()) {
      next = hops::hop_target{name, std::nullopt, it->second};
    } else {
      out.result = outcome::host_unreachable;
      out.failed_hop = "socks5";
      out.detail = "backend '" + name + "' has no portbase in the client's backends, which SOCKS5 needs";
      co_return out;
    }
  } else {
    next = socks_target_of(what.target);
  }
  if (!next) {
    out.result = outcome::malformed;
    out.failed_hop = "socks5";
    out.detail = "target '" + what.target + "' cannot be asked for with SOCKS5";
    co_return out;
  }
  route_connection conn = co_await route.connect(dl);
  if (!conn.stream) {
    out.result = conn.result;
    out.failed_hop = std::move(conn.failed_hop);
    out.detail = std::move(conn.detail);
    co_return out;
  }
  hops::hop_description hop;
  hop.kind = hops::hop_kind::socks5;
  hop.credentials = hops::hop_credentials{user_, password_};
  const hops::hop_result r = co_await hops::socks5_hop(*conn.stream, hop, *next, dl);
  if (r.result != hops::hop_outcome::connected) {
    conn.stream->close();
    out.result = hops::outcome_of(r);
    out.failed_hop = r.result == hops::hop_outcome::auth_failed ? "gateway_auth" : "socks5";
    out.detail = "the gateway's SOCKS5 answered " +
                 (r.detail.empty() ? std::string("a failure") : std::string(r.detail)) +
                 (r.code != 0 ? " (code " + std::to_string(r.code) + ")" : "") + " for " + what.target;
    co_return out;
  }
  out.result = outcome::success;
  out.leg = std::make_unique<stream_leg>(std::move(*conn.stream));
  co_return out;
}

}  // namespace edgerelay::proxy::gateway
