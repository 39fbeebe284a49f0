// The PROXY header gate; see proxy_header.hpp.
#include "proxy/inbound/proxy_header.hpp"

#include <algorithm>
#include <array>

#include <boost/asio/read.hpp>

#include "config/address.hpp"
#include "proxy/core/endpoint.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/metrics.hpp"
#include "tunnel/proxy_protocol_codec.hpp"

namespace edgerelay::proxy {
namespace {

using tunnel::proxy_header_parser;

tcp::endpoint endpoint_of(const tunnel::proxy_address& a) {
  if (a.v6) {
    return {net::ip::address_v6(a.bytes), a.port};
  }
  return {net::ip::address_v4(std::array<std::uint8_t, 4>{a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]}), a.port};
}

/// A header address as the gateway spells it everywhere else: IPv4-mapped IPv6 folded to IPv4.
tcp::endpoint folded(tcp::endpoint ep) {
  if (ep.address().is_v6() && ep.address().to_v6().is_v4_mapped()) {
    ep.address(net::ip::make_address_v4(net::ip::v4_mapped, ep.address().to_v6()));
  }
  return ep;
}

header_gate refused(std::string_view reason, outcome result = outcome::malformed) {
  header_gate g;
  g.result = result;
  g.reason = reason;
  return g;
}

/// Peek, feed, then read exactly what the parser took; repeat until the header is whole.
net::awaitable<header_gate> read_header(tcp::socket& s, const session_context& ctx, phase_deadline& dl) {
  proxy_header_parser parser;
  std::array<std::uint8_t, 512> buf;
  for (;;) {
    auto [ec, n] = co_await s.async_receive(net::buffer(buf), tcp::socket::message_peek, dl.token());
    if (dl.expired()) co_return refused("proxy_header_timeout", outcome::handshake_timeout);
    if (ec || n == 0) co_return refused("proxy_header_missing");
    const auto step = parser.feed(std::span<const std::uint8_t>(buf.data(), n));
    if (step.state == proxy_header_parser::status::failed) {
      co_return refused(tunnel::to_string(parser.error()));
    }
    // The bytes are already queued on the socket, so this read does not wait.
    auto [read_ec, taken] = co_await net::async_read(s, net::buffer(buf.data(), step.consumed), dl.token());
    if (read_ec) co_return refused("proxy_header_missing");
    if (step.state == proxy_header_parser::status::done) break;
  }
  const tunnel::proxy_header& h = parser.header();
  header_gate g;
  g.pass = true;
  g.result = outcome::success;
  g.client = ctx.peer;
  if (h.proxied) {
    g.client = folded(endpoint_of(h.source));
    g.local = folded(endpoint_of(h.destination));
    proxied_by origin;
    origin.balancer = ctx.peer;
    origin.authority = h.authority;
    if (h.ssl) {
      origin.tls_version = h.ssl->version;
      origin.tls_cn = h.ssl->cn;
    }
    g.origin = std::move(origin);
  }
  co_return g;
}

net::awaitable<header_gate> check_untrusted(tcp::socket& s, phase_deadline& dl) {
  std::array<std::uint8_t, 16> buf;
  auto [ec, n] = co_await s.async_receive(net::buffer(buf), tcp::socket::message_peek, dl.token());
  if (dl.expired()) co_return refused({}, outcome::handshake_timeout);
  header_gate g;
  g.pass = true;
  g.result = outcome::success;
  if (ec || n == 0) {
    co_return g;  // gone before a word: the door reads the end and closes as it always does
  }
  // A partial signature ("PRO") passes here: the door then reads it as what it is not, and refuses it.
  if (tunnel::detect_proxy_signature(std::span<const std::uint8_t>(buf.data(), n)) ==
      tunnel::proxy_signature::present) {
    co_return refused("proxy_header_untrusted", outcome::denied);
  }
  co_return g;
}

}  // namespace

bool trusted_balancer(const config::listener_config& l, const net::ip::address& peer) {
  if (!l.proxy_protocol) return false;
  const config::ip_address a = to_config_address(peer);
  return std::any_of(l.proxy_protocol->from.begin(), l.proxy_protocol->from.end(), [&a](const std::string& text) {
    const auto net = config::parse_cidr(text);  // validated at load: only a few short strings per accept
    return net && config::contains(*net, a);
  });
}

net::awaitable<header_gate> read_proxy_header(tcp::socket& client, const session_context& ctx) {
  const auto limit = handshake_left(ctx);
  co_return co_await with_phase_deadline(client.get_executor(), [&](phase_deadline& dl) {
    dl.start(limit);
    return read_header(client, ctx, dl);
  });
}

net::awaitable<header_gate> refuse_untrusted_header(tcp::socket& client, const session_context& ctx) {
  if (!ctx.listener->forward.empty()) {
    header_gate g;
    g.pass = true;
    g.result = outcome::success;
    co_return g;
  }
  const auto limit = handshake_left(ctx);
  co_return co_await with_phase_deadline(client.get_executor(), [&](phase_deadline& dl) {
    dl.start(limit);
    return check_untrusted(client, dl);
  });
}

void record_refused_header(const header_gate& gate, const session_context& ctx) {
  access_record rec;
  rec.listener = ctx.listener->name;
  rec.client = to_string(ctx.peer);
  if (!gate.reason.empty()) rec.protocol = "proxy";  // else a client that never spoke: "unknown"
  rec.result = gate.result;
  rec.detail = gate.reason;
  if (ctx.services->metrics != nullptr) ctx.services->metrics->session_ended(rec);
  if (ctx.snapshot->cfg.log.access_json) write_access_line(rec);
}

void record_proxied(const proxied_by& origin, access_record& rec) {
  rec.proxied_by = to_string(origin.balancer);
  rec.proxy_authority = origin.authority;
  rec.proxy_tls = origin.tls_version;
  rec.proxy_tls_cn = origin.tls_cn;
}

}  // namespace edgerelay::proxy
