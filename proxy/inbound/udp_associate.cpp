// SOCKS5 UDP ASSOCIATE: the association coroutine, its three directions, and the worker's list of
// live associations that a reload rechecks.
//
// Three directions run under one duplex for the association's life: the control connection's
// watcher, the client -> target pump and the target -> client pump; the duplex's idle deadline is
// the association's. Whichever ends first stops the others. A pump waits for its socket to become
// readable holding no buffer, then borrows one of the worker's relay buffers, receives without
// blocking what is queued, relays it (one datagram in flight: it awaits each send before the next
// receive) and gives the buffer back before it waits again. So an idle association holds no
// buffer (about 12 KiB of RSS each, against 140 KiB when each kept two 64 KiB buffers for its
// life: tests/clients/test_udp_memory.py), and it queues nothing beyond the kernel's socket buffers.
#include "proxy/inbound/udp_associate.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/write.hpp>

#include "config/address.hpp"
#include "config/policy.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/relay/duplex.hpp"
#include "proxy/relay/relay_pools.hpp"
#include "socks/udp_header.hpp"

namespace edgerelay::proxy {
namespace {

/// A borrowed relay buffer holds any datagram a client can send (at most 65,527 bytes over IPv6).
constexpr std::size_t buffer_size = relay_pools::buffer_size;
constexpr std::size_t max_ip_header = 3 + 1 + 16 + 2;  ///< RSV FRAG ATYP IPv6 PORT: a reply's header
/// A reply's payload goes behind room for its header: a larger one could not reach the client
/// wrapped anyway (the largest IPv6 datagram is 65,527 bytes), so it is dropped, never cut short.
constexpr std::size_t max_reply_payload = buffer_size - max_ip_header;
constexpr std::size_t max_batch = 32;            ///< datagrams a pump relays per wake-up before it waits again
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
  std::uint64_t oversized = 0;   ///< larger than a relay buffer holds (a reply: with its header)
  std::uint64_t send_errors = 0;
};

/// The request as the rules allowed it, without its host: that is kept beside it as a string.
config::request without_host(config::request r) {
  r.host = {};
  return r;
}

struct named_target {
  std::string host;
  std::uint16_t port = 0;
  std::optional<udp::endpoint> to;  ///< nullopt: denied by the rules
  config::request allowed;          ///< when `to` is set: what the rules allowed (its host is `host`)
};

/// Where a datagram goes, and the request the rules allowed it on (its host is `host`).
struct destination {
  udp::endpoint to;
  std::string host;  ///< the name the rules saw; empty for an address
  config::request allowed;
};

/// A destination the association relayed to: where, and the name the rules saw (empty for an address).
struct peer_key {
  udp::endpoint at;
  std::string host;
  friend bool operator<(const peer_key& a, const peer_key& b) {
    if (a.at != b.at) {
      return a.at < b.at;
    }
    return a.host < b.host;
  }
};

std::string describe(const peer_key& k) {
  return k.host.empty() ? to_string(k.at) : concat(k.host, " (", to_string(k.at), ")");
}

/// Everything one association shares between its branches; lives in serve_udp_associate's frame.
struct association final : udp_associations::member {
  association(const net::any_io_executor& ex, const session_context& ctx, tunnel::client_stream& control_connection,
              phase_deadline& d, access_record& r)
      : member(ctx.services->associations),
        client_udp(ex),
        upstream_udp(ex),
        control(control_connection),
        pools(*ctx.services->pools),
        rules(ctx.snapshot),
        pol(&ctx.snapshot->pol),
        dl(d),
        rec(r) {}

  udp::socket client_udp;    ///< faces the client: the relay address in the reply
  udp::socket upstream_udp;  ///< faces the targets
  bool upstream_v6 = false;  ///< dual-stack IPv6 socket (IPv4 targets as v4-mapped); else IPv4 only
  net::ip::address client_ip;
  std::uint16_t client_port = 0;  ///< 0 until the client's first datagram when its request named 0
  tunnel::client_stream& control;
  duplex* flow = nullptr;  ///< while the directions run
  relay_pools& pools;      ///< the worker's: where the pumps borrow their buffers

  /// The snapshot whose rules decide the next datagram: the session's, until a reload's recheck
  /// hands over a new one.
  std::shared_ptr<const runtime_snapshot> rules;
  const config::policy* pol;
  bool revoked = false;
  config::ip_address source;
  std::string_view user;
  std::string_view listener;
  std::chrono::milliseconds connect_timeout{0};
  phase_deadline& dl;
  access_record& rec;
  bool rule_recorded = false;

  /// What each destination relayed to was allowed on (host empty: it is the key's), to decide it
  /// again on reload; the keys with an address are also who may answer.
  std::map<peer_key, config::request> peers;
  std::vector<std::map<peer_key, config::request>::iterator> peer_order;  ///< oldest first
  std::vector<named_target> names;
  drop_counters dropped;

  bool usable(const net::ip::address& a) const { return upstream_v6 || a.is_v4(); }

  udp::endpoint for_upstream(const udp::endpoint& ep) const {
    if (upstream_v6 && ep.address().is_v4()) {
      return udp::endpoint(net::ip::make_address_v6(net::ip::v4_mapped, ep.address().to_v4()), ep.port());
    }
    return ep;
  }

  /// True when `from` is a target this association sent to (under any name).
  bool sent_to(const udp::endpoint& from) const {
    const auto it = peers.lower_bound(peer_key{from, {}});
    return it != peers.end() && it->first.at == from;
  }

  void remember_peer(const destination& d) {
    const auto [it, added] = peers.try_emplace(peer_key{d.to, d.host}, d.allowed);
    if (!added) {
      return;
    }
    peer_order.push_back(it);
    if (peer_order.size() > max_peers) {
      peers.erase(peer_order.front());
      peer_order.erase(peer_order.begin());  // 256 pointers moved, only once the list is full
    }
  }

  void remember_name(const std::string& host, std::uint16_t port, std::optional<udp::endpoint> to,
                     const config::request& allowed) {
    if (names.size() >= max_names) {
      names.erase(names.begin());
    }
    names.push_back(named_target{host, port, to, without_host(allowed)});
  }

  void note_rule(const config::decision& d) {
    if (!rule_recorded) {
      rec.rule = std::string(d.rule_name);
      rule_recorded = true;
    }
  }

 private:
  bool follow(const std::shared_ptr<const runtime_snapshot>& now) override {
    if (revoked) {
      return false;  // already closing
    }
    rules = now;
    pol = &now->pol;
    connect_timeout = now->cfg.limits.connect_timeout;
    names.clear();  // decided under the old rules
    for (const auto& [key, allowed] : peers) {
      config::request req = allowed;
      req.host = key.host;
      const config::decision d = pol->decide(req);
      if (d.result == config::verdict::allow) {
        continue;
      }
      revoked = true;
      rec.detail = "revoked_by_reload";
      rec.rule = std::string(d.rule_name);
      log::info("reload", "closing UDP association ", rec.client, ": it relayed to ", describe(key),
                ", now denied by rule '", d.rule_name, "'");
      control.close();
      if (flow != nullptr) {
        flow->stop(relay_end::closed, net::error::operation_aborted);
      }
      return true;
    }
    return false;
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

/// The rules' answer for a datagram. Datagrams never cross an upstream proxy: a rule with `via`
/// that would allow one denies it instead of letting it go out directly (docs/upstreams.md).
config::decision decide_datagram(const association& a, const config::request& req) {
  config::decision d = a.pol->decide(req);
  if (d.result == config::verdict::allow && d.rule_index >= 0 &&
      static_cast<std::size_t>(d.rule_index) < a.rules->cfg.rules.size() &&
      !a.rules->cfg.rules[static_cast<std::size_t>(d.rule_index)].via.empty()) {
    d.result = config::verdict::deny;
  }
  return d;
}

/// Where a datagram for `t` goes, decided as a CONNECT's target: an address is decided as it is;
/// a name first by itself, then on each address it resolves to (resolution bounded by
/// connect_timeout), and the first allowed address that the upstream socket can reach is used.
/// nullopt: drop the datagram (counted).
net::awaitable<std::optional<destination>> decide_target(association& a, const socks::target_address& t) {
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
    const config::decision d = decide_datagram(a, req);
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
    co_return destination{udp::endpoint(address, where.port), {}, without_host(req)};
  }

  for (const named_target& n : a.names) {
    if (n.port == where.port && n.host == where.host) {
      if (!n.to) {
        ++a.dropped.denied;
        co_return std::nullopt;
      }
      co_return destination{*n.to, n.host, n.allowed};
    }
  }

  const config::decision early = decide_datagram(a, req);
  if (early.result == config::verdict::deny) {
    a.note_rule(early);
    ++a.dropped.denied;
    log_denied(a, t, early.rule_name);
    a.remember_name(where.host, where.port, std::nullopt, {});
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
    const config::decision d = decide_datagram(a, req);
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
      a.remember_name(where.host, where.port, to, req);
      co_return destination{to, where.host, without_host(req)};
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
  a.remember_name(where.host, where.port, std::nullopt, {});
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

/// Client -> targets, one wake-up: the datagrams queued now (at most max_batch), each received
/// into the borrowed `buf` and sent on before the next. False when the association ends.
net::awaitable<bool> relay_up(association& a, duplex& d, std::uint8_t* buf, unsigned& errors) {
  for (std::size_t i = 0; i < max_batch; ++i) {
    udp::endpoint from;
    error_code ec;
    // MSG_TRUNC: the datagram's real size, so one larger than the buffer is seen and dropped.
    const std::size_t n = a.client_udp.receive_from(net::buffer(buf, buffer_size), from, MSG_TRUNC, ec);
    if (ec == net::error::would_block) {
      co_return true;  // drained: wait for the next
    }
    if (ec) {
      if (!a.client_udp.is_open() || ++errors > max_consecutive_errors) {
        d.stop(relay_end::reset, ec);  // failed too often in a row, or closed under the pump
        co_return false;
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
    if (n > buffer_size) {
      ++a.dropped.oversized;
      continue;
    }
    const socks::udp_parse_result parsed = socks::parse_udp_header(std::span<const std::uint8_t>(buf, n));
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
    // bounded by connect_timeout, and the association ends once it returns. The buffer stays
    // borrowed meanwhile.
    const std::optional<destination> to = co_await decide_target(a, header->target);
    if (d.stopped()) {
      co_return false;
    }
    if (!to) {
      continue;
    }
    const std::size_t payload = n - header->payload_offset;
    auto [sec, sent] = co_await a.upstream_udp.async_send_to(net::buffer(buf + header->payload_offset, payload),
                                                             a.for_upstream(to->to), use_ec);
    if (d.stopped()) {
      co_return false;
    }
    if (sec) {
      if (sec == net::error::operation_aborted || !a.upstream_udp.is_open()) {
        d.stop(relay_end::reset, sec);
        co_return false;
      }
      ++a.dropped.send_errors;
      continue;
    }
    a.remember_peer(*to);
    a.rec.bytes_up += payload;
    d.touch();
  }
  co_return true;
}

/// Targets -> client, one wake-up: only from a target this association sent to, wrapped in the
/// header naming it. The payload is received behind room for the header, so wrapping copies only
/// the header. False when the association ends.
net::awaitable<bool> relay_down(association& a, duplex& d, std::uint8_t* buf, unsigned& errors) {
  for (std::size_t i = 0; i < max_batch; ++i) {
    udp::endpoint from;
    error_code ec;
    const std::size_t n =
        a.upstream_udp.receive_from(net::buffer(buf + max_ip_header, max_reply_payload), from, MSG_TRUNC, ec);
    if (ec == net::error::would_block) {
      co_return true;
    }
    if (ec) {
      if (!a.upstream_udp.is_open() || ++errors > max_consecutive_errors) {
        d.stop(relay_end::reset, ec);  // failed too often in a row, or closed under the pump
        co_return false;
      }
      continue;
    }
    errors = 0;
    from = unmapped(from);
    if (a.client_port == 0 || !a.sent_to(from)) {
      ++a.dropped.strangers;
      continue;
    }
    if (n > max_reply_payload) {
      ++a.dropped.oversized;
      continue;
    }
    const std::vector<std::uint8_t> header = socks::encode_udp_header(to_socks(from));
    if (header.empty() || header.size() > max_ip_header) {
      ++a.dropped.malformed;
      continue;
    }
    std::uint8_t* start = buf + (max_ip_header - header.size());
    std::copy(header.begin(), header.end(), start);
    auto [sec, sent] = co_await a.client_udp.async_send_to(net::buffer(start, header.size() + n),
                                                           udp::endpoint(a.client_ip, a.client_port), use_ec);
    if (d.stopped()) {
      co_return false;
    }
    if (sec) {
      if (sec == net::error::operation_aborted || !a.client_udp.is_open()) {
        d.stop(relay_end::reset, sec);
        co_return false;
      }
      ++a.dropped.send_errors;
      continue;
    }
    a.rec.bytes_down += n;
    d.touch();
  }
  co_return true;
}

/// (b) One direction: waits for `from` to become readable holding no buffer, then relays what is
/// queued in a buffer borrowed from the worker, given back before the next wait.
template <class Relay>
net::awaitable<void> pump(association& a, duplex& d, udp::socket& from, Relay relay) {
  unsigned errors = 0;
  for (;;) {
    auto [ec] = co_await from.async_wait(udp::socket::wait_read, use_ec);
    if (d.stopped()) {
      co_return;
    }
    if (ec) {
      d.stop(relay_end::reset, ec);
      co_return;
    }
    std::unique_ptr<std::uint8_t[]> buf = a.pools.take_buffer();
    const bool more = co_await relay(a, d, buf.get(), errors);
    a.pools.give_back(std::move(buf));
    if (!more) {
      co_return;
    }
  }
}

/// Both sockets are non-blocking: the pumps receive only what is already queued.
bool open_client_udp(udp::socket& s, const net::ip::address& at, error_code& ec) {
  s.open(at.is_v4() ? udp::v4() : udp::v6(), ec);
  if (!ec) s.non_blocking(true, ec);
  if (!ec) s.bind(udp::endpoint(at, 0), ec);
  return !ec;
}

/// A dual-stack IPv6 socket when the host has IPv6, else IPv4; on the wildcard address, so the
/// kernel picks the source address each target is routed from.
bool open_upstream_udp(udp::socket& s, bool& v6, error_code& ec) {
  s.open(udp::v6(), ec);
  if (!ec) s.non_blocking(true, ec);
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
  if (!ec) s.non_blocking(true, ec);
  if (!ec) s.bind(udp::endpoint(udp::v4(), 0), ec);
  return !ec;
}

net::awaitable<void> run_association(tunnel::client_stream& client, socks::socks_server& socks,
                                     const target& client_said, const session_context& ctx, access_record& rec,
                                     phase_deadline& dl) {
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  association a(client.get_executor(), ctx, client, dl, rec);
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
  a.flow = &flow;
  const duplex_result ended = co_await flow.run(watch_control(client, flow), pump(a, flow, a.client_udp, relay_up),
                                                pump(a, flow, a.upstream_udp, relay_down));
  a.flow = nullptr;
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
             " malformed, ", d.denied, " denied, ", d.unresolved, " unresolved, ", d.oversized, " oversized, ",
             d.send_errors, " send errors");
}

}  // namespace

udp_associations::member::member(udp_associations* list) noexcept : list_(list) {
  if (list_ == nullptr) {
    return;
  }
  next_ = list_->head_;
  if (next_ != nullptr) {
    next_->prev_ = this;
  }
  list_->head_ = this;
  ++list_->size_;
}

udp_associations::member::~member() {
  if (list_ == nullptr) {
    return;
  }
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    list_->head_ = next_;
  }
  if (next_ != nullptr) {
    next_->prev_ = prev_;
  }
  --list_->size_;
}

std::size_t udp_associations::recheck(const std::shared_ptr<const runtime_snapshot>& now) {
  std::size_t closed = 0;
  // follow() only closes and cancels: no association leaves the list during the walk.
  for (member* m = head_; m != nullptr; m = m->next_) {
    if (m->follow(now)) {
      ++closed;
    }
  }
  return closed;
}

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
