// SOCKS5 UDP ASSOCIATE: the association coroutine and its three directions.
//
// Three directions run under one duplex for the association's life: the control connection's
// watcher, the client -> target pump and the target -> client pump; the duplex's idle deadline is
// the association's. Whichever ends first stops the others. Each pump has one datagram in flight (it awaits its send
// before it receives again), so an association queues nothing beyond the kernel's socket buffers;
// its two 64 KiB receive buffers live as long as the association.
#include "proxy/inbound/udp_associate.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/write.hpp>

#include "config/address.hpp"
#include "config/policy.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/relay/duplex.hpp"
#include "socks/udp_header.hpp"

namespace edgerelay::proxy {
namespace {

constexpr std::size_t max_datagram = 64 * 1024;        ///< receive buffer per direction
constexpr std::size_t max_ip_header = 3 + 1 + 16 + 2;  ///< RSV FRAG ATYP IPv6 PORT: a reply's header
constexpr std::size_t max_peers = 256;           ///< targets remembered for their replies (oldest forgotten first)
constexpr std::size_t max_names = 32;            ///< names remembered with their decision
constexpr unsigned max_consecutive_errors = 64;  ///< receive errors in a row that end a pump

net::ip::address unmapped(const net::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  }
  return a;
}

udp::endpoint unmapped(const udp::endpoint& ep) {
  return udp::endpoint(unmapped(ep.address()), ep.port());
}

std::string to_string(const udp::endpoint& ep) {
  return proxy::to_string(tcp::endpoint(ep.address(), ep.port()));
}

socks::target_address to_socks(const udp::endpoint& ep) {
  socks::target_address t;
  t.port = ep.port();
  if (ep.address().is_v4()) {
    t.host = ep.address().to_v4().to_bytes();
  } else {
    t.host = ep.address().to_v6().to_bytes();
  }
  return t;
}

socks::bound_address bound_of(const udp::endpoint& ep) {
  socks::bound_address b;
  b.port = ep.port();
  const auto a = unmapped(ep.address());
  if (a.is_v4()) {
    b.host = a.to_v4().to_bytes();
  } else {
    b.host = a.to_v6().to_bytes();
  }
  return b;
}

/// Datagrams dropped, by reason (logged at debug when the association ends).
struct drop_counters {
  std::uint64_t strangers = 0;   ///< not from the client, or not from a target this association sent to
  std::uint64_t fragments = 0;   ///< FRAG != 0: fragmentation is not supported
  std::uint64_t malformed = 0;   ///< the header does not parse
  std::uint64_t denied = 0;      ///< the rules deny the target
  std::uint64_t unresolved = 0;  ///< the name did not resolve in time, or no address can be sent to
  std::uint64_t send_errors = 0;
};

struct named_target {
  std::string host;
  std::uint16_t port = 0;
  std::optional<udp::endpoint> to;  ///< nullopt: denied by the rules
};

/// Everything one association shares between its branches; lives in serve_udp_associate's frame.
struct association {
  association(const net::any_io_executor& ex, const config::policy& p, phase_deadline& d, access_record& r)
      : client_udp(ex), upstream_udp(ex), pol(p), dl(d), rec(r) {}

  udp::socket client_udp;    ///< faces the client: the relay address in the reply
  udp::socket upstream_udp;  ///< faces the targets
  bool upstream_v6 = false;  ///< dual-stack IPv6 socket (IPv4 targets as v4-mapped); else IPv4 only
  net::ip::address client_ip;
  std::uint16_t client_port = 0;  ///< 0 until the client's first datagram when its request named 0

  const config::policy& pol;
  config::ip_address source;
  std::string_view user;
  std::string_view listener;
  std::chrono::milliseconds connect_timeout{0};
  phase_deadline& dl;
  access_record& rec;
  bool rule_recorded = false;

  std::set<udp::endpoint> peers;
  std::deque<udp::endpoint> peer_order;
  std::vector<named_target> names;
  drop_counters dropped;

  bool usable(const net::ip::address& a) const { return upstream_v6 || a.is_v4(); }

  udp::endpoint for_upstream(const udp::endpoint& ep) const {
    if (upstream_v6 && ep.address().is_v4()) {
      return udp::endpoint(net::ip::make_address_v6(net::ip::v4_mapped, ep.address().to_v4()), ep.port());
    }
    return ep;
  }

  void remember_peer(const udp::endpoint& ep) {
    if (!peers.insert(ep).second) {
      return;
    }
    peer_order.push_back(ep);
    if (peer_order.size() > max_peers) {
      peers.erase(peer_order.front());
      peer_order.pop_front();
    }
  }

  void remember_name(const std::string& host, std::uint16_t port, std::optional<udp::endpoint> to) {
    if (names.size() >= max_names) {
      names.erase(names.begin());
    }
    names.push_back(named_target{host, port, to});
  }

  void note_rule(const config::decision& d) {
    if (!rule_recorded) {
      rec.rule = std::string(d.rule_name);
      rule_recorded = true;
    }
  }
};

/// Keeps the deadline watching `r` for the current phase, and ends that phase, until it goes away.
class resolve_phase {
 public:
  resolve_phase(phase_deadline& dl, tcp::resolver& r, std::chrono::milliseconds limit) : dl_(dl) {
    dl_.start(limit);
    dl_.watch(&r);
  }
  resolve_phase(const resolve_phase&) = delete;
  resolve_phase& operator=(const resolve_phase&) = delete;
  ~resolve_phase() {
    dl_.watch(nullptr);
    dl_.stop();
  }

 private:
  phase_deadline& dl_;
};

void log_denied(const association& a, const socks::target_address& t, std::string_view rule) {
  log::debug("udp", "association from ", a.rec.client, ": datagram to ", socks::to_string(t), " denied by rule '", rule,
             "'");
}

/// Where a datagram for `t` goes, decided as a CONNECT's target: an address is decided as it is;
/// a name first by itself, then on each address it resolves to (resolution bounded by
/// connect_timeout), and the first allowed address that the upstream socket can reach is used.
/// nullopt: drop the datagram (counted).
net::awaitable<std::optional<udp::endpoint>> decide_target(association& a, const socks::target_address& t) {
  const target where = from_socks(t);
  config::request req{a.source, a.user, a.listener, where.host, std::nullopt, where.port, config::transport::udp};
  if (where.address) {
    const net::ip::address address = unmapped(*where.address);
    req.address = to_config_address(address);
    if (config::is_unspecified_range(*req.address)) {
      // The kernel delivers 0.0.0.0/8 and :: to loopback: never a destination, whatever the rules.
      ++a.dropped.denied;
      log_denied(a, t, "never-dialled-address");
      co_return std::nullopt;
    }
    const config::decision d = a.pol.decide(req);
    a.note_rule(d);
    if (d.result != config::verdict::allow) {
      ++a.dropped.denied;
      log_denied(a, t, d.rule_name);
      co_return std::nullopt;
    }
    if (!a.usable(address)) {
      ++a.dropped.unresolved;
      co_return std::nullopt;
    }
    co_return udp::endpoint(address, where.port);
  }

  for (const named_target& n : a.names) {
    if (n.port == where.port && n.host == where.host) {
      if (!n.to) {
        ++a.dropped.denied;
      }
      co_return n.to;
    }
  }

  const config::decision early = a.pol.decide(req);
  if (early.result == config::verdict::deny) {
    a.note_rule(early);
    ++a.dropped.denied;
    log_denied(a, t, early.rule_name);
    a.remember_name(where.host, where.port, std::nullopt);
    co_return std::nullopt;
  }

  tcp::resolver resolver(co_await net::this_coro::executor);
  const resolve_phase phase(a.dl, resolver, a.connect_timeout);
  auto [ec, results] =
      co_await resolver.async_resolve(where.host, std::to_string(where.port), tcp::resolver::numeric_service, use_ec);
  if (ec) {
    ++a.dropped.unresolved;
    log::debug("udp", "association from ", a.rec.client, ": ", where.host, " does not resolve: ", ec);
    co_return std::nullopt;
  }
  std::optional<config::decision> first_denial;
  bool any_allowed = false;
  for (const auto& r : results) {
    const net::ip::address address = unmapped(r.endpoint().address());
    req.address = to_config_address(address);
    if (config::is_unspecified_range(*req.address)) {
      continue;
    }
    const config::decision d = a.pol.decide(req);
    if (d.result != config::verdict::allow) {
      if (!first_denial) {
        first_denial = d;
      }
      continue;
    }
    any_allowed = true;
    if (a.usable(address)) {
      a.note_rule(d);
      const udp::endpoint to(address, where.port);
      a.remember_name(where.host, where.port, to);
      co_return to;
    }
  }
  if (any_allowed) {
    ++a.dropped.unresolved;  // allowed, but only at addresses of a family the upstream socket lacks
    co_return std::nullopt;
  }
  ++a.dropped.denied;
  if (first_denial) {
    a.note_rule(*first_denial);
    log_denied(a, t, first_denial->rule_name);
  }
  a.remember_name(where.host, where.port, std::nullopt);
  co_return std::nullopt;
}

/// (a) The control connection: anything sent after the request is ignored; EOF or an error ends
/// the association, as RFC 1928 asks.
net::awaitable<void> watch_control(tunnel::client_stream& client, duplex& d) {
  std::array<std::uint8_t, 512> discard;
  for (;;) {
    auto [ec, n] = co_await client.async_read_some(net::buffer(discard), use_ec);
    if (ec || n == 0) {
      d.stop(relay_end::closed, ec);
      co_return;
    }
  }
}

/// (b) Client -> targets: one datagram at a time.
net::awaitable<void> pump_up(association& a, duplex& d) {
  std::vector<std::uint8_t> buf(max_datagram);
  unsigned errors = 0;
  for (;;) {
    udp::endpoint from;
    auto [ec, n] = co_await a.client_udp.async_receive_from(net::buffer(buf), from, use_ec);
    if (d.stopped()) {
      co_return;
    }
    if (ec) {
      if (ec == net::error::operation_aborted || !a.client_udp.is_open() || ++errors > max_consecutive_errors) {
        d.stop(relay_end::reset, ec);  // failed too often in a row, or closed under the pump
        co_return;
      }
      continue;
    }
    errors = 0;
    from = unmapped(from);
    if (from.address() != a.client_ip || (a.client_port != 0 && from.port() != a.client_port)) {
      ++a.dropped.strangers;
      continue;
    }
    a.client_port = from.port();
    const socks::udp_parse_result parsed = socks::parse_udp_header(std::span<const std::uint8_t>(buf.data(), n));
    const auto* header = std::get_if<socks::udp_header>(&parsed);
    if (header == nullptr) {
      ++a.dropped.malformed;
      continue;
    }
    if (header->frag != 0) {
      ++a.dropped.fragments;
      continue;
    }
    // A resolve is not cancelled by stop() (no per-operation cancellation on Boost 1.81): it is
    // bounded by connect_timeout, and the association ends once it returns.
    const std::optional<udp::endpoint> to = co_await decide_target(a, header->target);
    if (d.stopped()) {
      co_return;
    }
    if (!to) {
      continue;
    }
    const std::size_t payload = n - header->payload_offset;
    auto [sec, sent] = co_await a.upstream_udp.async_send_to(net::buffer(buf.data() + header->payload_offset, payload),
                                                             a.for_upstream(*to), use_ec);
    if (d.stopped()) {
      co_return;
    }
    if (sec) {
      if (sec == net::error::operation_aborted || !a.upstream_udp.is_open()) {
        d.stop(relay_end::reset, sec);
        co_return;
      }
      ++a.dropped.send_errors;
      continue;
    }
    a.remember_peer(*to);
    a.rec.bytes_up += payload;
    d.touch();
  }
}

/// (b) Targets -> client: only from a target this association sent to, wrapped in the header
/// naming it. The payload is received behind room for the header, so wrapping copies only the header.
net::awaitable<void> pump_down(association& a, duplex& d) {
  std::vector<std::uint8_t> buf(max_ip_header + max_datagram);
  unsigned errors = 0;
  for (;;) {
    udp::endpoint from;
    auto [ec, n] =
        co_await a.upstream_udp.async_receive_from(net::buffer(buf.data() + max_ip_header, max_datagram), from, use_ec);
    if (d.stopped()) {
      co_return;
    }
    if (ec) {
      if (ec == net::error::operation_aborted || !a.upstream_udp.is_open() || ++errors > max_consecutive_errors) {
        d.stop(relay_end::reset, ec);  // failed too often in a row, or closed under the pump
        co_return;
      }
      continue;
    }
    errors = 0;
    from = unmapped(from);
    if (a.client_port == 0 || !a.peers.contains(from)) {
      ++a.dropped.strangers;
      continue;
    }
    const std::vector<std::uint8_t> header = socks::encode_udp_header(to_socks(from));
    if (header.empty() || header.size() > max_ip_header) {
      ++a.dropped.malformed;
      continue;
    }
    std::uint8_t* start = buf.data() + (max_ip_header - header.size());
    std::copy(header.begin(), header.end(), start);
    auto [sec, sent] = co_await a.client_udp.async_send_to(net::buffer(start, header.size() + n),
                                                           udp::endpoint(a.client_ip, a.client_port), use_ec);
    if (d.stopped()) {
      co_return;
    }
    if (sec) {
      if (sec == net::error::operation_aborted || !a.client_udp.is_open()) {
        d.stop(relay_end::reset, sec);
        co_return;
      }
      ++a.dropped.send_errors;
      continue;
    }
    a.rec.bytes_down += n;
    d.touch();
  }
}

bool open_client_udp(udp::socket& s, const net::ip::address& at, error_code& ec) {
  s.open(at.is_v4() ? udp::v4() : udp::v6(), ec);
  if (!ec) {
    s.bind(udp::endpoint(at, 0), ec);
  }
  return !ec;
}

/// A dual-stack IPv6 socket when the host has IPv6, else IPv4; on the wildcard address, so the
/// kernel picks the source address each target is routed from.
bool open_upstream_udp(udp::socket& s, bool& v6, error_code& ec) {
  s.open(udp::v6(), ec);
  if (!ec) s.set_option(net::ip::v6_only(false), ec);
  if (!ec) s.bind(udp::endpoint(udp::v6(), 0), ec);
  if (!ec) {
    v6 = true;
    return true;
  }
  error_code ignored;
  s.close(ignored);
  v6 = false;
  s.open(udp::v4(), ec);
  if (!ec) s.bind(udp::endpoint(udp::v4(), 0), ec);
  return !ec;
}

net::awaitable<void> run_association(tunnel::client_stream& client, socks::socks_server& socks,
                                     const target& client_said, const session_context& ctx, access_record& rec,
                                     phase_deadline& dl) {
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  association a(client.get_executor(), ctx.snapshot->pol, dl, rec);
  a.client_ip = unmapped(ctx.peer.address());
  a.client_port = client_said.port;
  a.source = to_config_address(a.client_ip);
  a.user = rec.user;
  a.listener = ctx.listener->name;
  a.connect_timeout = limits.connect_timeout;

  error_code ec;
  udp::endpoint relay;
  const tcp::endpoint reached = client.socket().local_endpoint(ec);
  if (!ec && open_client_udp(a.client_udp, unmapped(reached.address()), ec) &&
      open_upstream_udp(a.upstream_udp, a.upstream_v6, ec)) {
    relay = a.client_udp.local_endpoint(ec);
  }
  const bool opened = !ec;
  if (!opened) {
    log::warn("udp", "association from ", rec.client, ": cannot open its UDP sockets: ", ec);
  }

  // The reply, from the codec: BND = the relay's UDP address.
  dl.start(limits.handshake_timeout);
  const socks::step_t reply =
      socks.on_connect(opened ? socks::reply_code::succeeded : socks::reply_code::general_failure,
                       opened ? bound_of(relay) : socks::bound_address{});
  const auto* send = std::get_if<socks::step::send>(&reply);
  error_code write_ec = net::error::invalid_argument;
  if (send != nullptr) {
    auto [wec, written] = co_await net::async_write(client, net::buffer(send->bytes), dl.token());
    write_ec = wec;
  }
  dl.stop();
  rec.result = outcome::general_failure;
  if (!opened || write_ec) {
    if (opened) {
      rec.detail = "client_gone";
    }
    co_return;  // the sockets close with `a`
  }
  rec.result = outcome::success;
  log::debug("udp", "association from ", rec.client, " relays at ", to_string(relay));

  // No direction ends cleanly (each stops the association), so fin_timeout never applies.
  duplex flow(client.get_executor(), limits.idle_timeout, limits.idle_timeout);
  flow.add_leg(client.socket());
  flow.add_leg(a.client_udp);
  flow.add_leg(a.upstream_udp);
  const duplex_result ended = co_await flow.run(watch_control(client, flow), pump_up(a, flow), pump_down(a, flow));
  switch (ended.end) {
    case relay_end::closed: break;  // the control connection closed: the normal end
    case relay_end::idle_timeout: rec.detail = "idle_timeout"; break;
    default: rec.detail = "udp_error"; break;
  }
  a.client_udp.close(ec);
  a.upstream_udp.close(ec);
  const drop_counters& d = a.dropped;
  log::debug("udp", "association from ", rec.client, " ended: ", rec.bytes_up, " bytes up, ", rec.bytes_down,
             " down; dropped: ", d.strangers, " from strangers, ", d.fragments, " fragments, ", d.malformed,
             " malformed, ", d.denied, " denied, ", d.unresolved, " unresolved, ", d.send_errors, " send errors");
}

}  // namespace

net::awaitable<void> serve_udp_associate(tunnel::client_stream& client, socks::socks_server& socks,
                                         const target& client_said, const session_context& ctx, access_record& rec,
                                         phase_deadline& dl) {
  rec.protocol = "socks5-udp";
  try {
    co_await run_association(client, socks, client_said, ctx, rec, dl);
  } catch (const std::exception& e) {
    rec.result = outcome::general_failure;
    log::error("udp", "association from ", rec.client, " failed: ", e.what());
  }
}

}  // namespace edgerelay::proxy
