// Connector implementation.
#include "proxy/outbound/connector.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>

#include "config/address.hpp"
#include "proxy/outbound/backend_addresses.hpp"
#include "proxy/observe/log.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::proxy {

target from_socks(const socks::target_address& t) {
  target out;
  out.port = t.port;
  if (const auto* v4 = std::get_if<socks::ipv4_bytes>(&t.host)) {
    out.address = net::ip::address_v4(*v4);
  } else if (const auto* v6 = std::get_if<socks::ipv6_bytes>(&t.host)) {
    out.address = net::ip::address_v6(*v6);
  } else {
    out.host = std::get<std::string>(t.host);
  }
  return out;
}

std::string to_string(const target& t) {
  if (t.address) {
    return to_string(tcp::endpoint(*t.address, t.port));
  }
  return concat(t.host, ':', t.port);
}

namespace {

void tune(tcp::socket& s) {
  error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
  s.set_option(net::socket_base::keep_alive(true), ignored);
}

}  // namespace

namespace {

/// Whether `asked` is the address of the backend host `host`: the literal itself, or one the name
/// resolved to (the table is locked once, by the first name asked about, through `names`).
bool is_backend_address(const std::string& host, const config::ip_address& asked, const backend_addresses* resolved,
                        std::optional<backend_addresses::reader>& names) {
  if (const auto literal = config::parse_ip_literal(host)) {
    return *literal == asked;
  }
  if (resolved == nullptr) {
    return false;
  }
  if (!names) {
    names.emplace(resolved->read());
  }
  return names->resolves_to(host, asked);
}

}  // namespace

void route_to_backend(const config::config& cfg, const backend_addresses* resolved, target& t) {
  // A domain that is an IP literal ("127.0.0.1" in a SOCKS5 domain) is that address, as the rules take it.
  std::optional<config::ip_address> asked;
  if (t.address) {
    asked = to_config_address(*t.address);
  } else {
    asked = config::parse_ip_literal(t.host);
  }
  std::optional<backend_addresses::reader> names;
  for (const auto& b : cfg.backends) {
    const bool by_name = !t.host.empty() && config::host_equals(t.host, b.name);
    bool by_address = false;
    if (!by_name && t.port == static_cast<std::uint16_t>(b.portbase + 1)) {
      by_address = asked ? is_backend_address(b.host, *asked, resolved, names) : config::host_equals(t.host, b.host);
    }
    if (by_name || by_address) {
      t.backend = &b;
      return;
    }
  }
}

void route_to_backend(const session_context& ctx, target& t) {
  route_to_backend(ctx.snapshot->cfg, ctx.services != nullptr ? ctx.services->addresses : nullptr, t);
}

target backend_target(const config::backend_config& b) {
  target t;
  t.host = b.name;
  t.port = static_cast<std::uint16_t>(b.portbase + 1);
  t.backend = &b;
  return t;
}

namespace {

/// Binds `s` (opened for `ep`'s family) to `opts.bind` when it applies; false when binding failed.
/// What the access log names as the deciding "rule" of a dial refused for its address alone.
constexpr std::string_view reserved_rule = "never-dialled-address";

bool never_dialled(const config::ip_address& a) noexcept {
  return config::is_unspecified_range(a) || config::is_multicast(a) || config::is_limited_broadcast(a);
}

bool bind_source(tcp::socket& s, const tcp::endpoint& ep, const dial_options& opts, error_code& ec) {
  ec.clear();
  s.open(ep.protocol(), ec);
  if (ec || !opts.bind || !ep.address().is_v4()) {
    return !ec;
  }
  s.bind(tcp::endpoint(*opts.bind, 0), ec);
  return !ec;
}

net::awaitable<dial_result> dial_impl(const config::policy& pol, dial_identity who, target where, phase_deadline& dl,
                                      dial_options opts) {
  dial_result out;
  try {
    const auto ex = co_await net::this_coro::executor;
    // A backend is dialled at its own host; the policy sees the backend's name.
    std::string dial_host = where.host;
    std::optional<net::ip::address> dial_address = where.address;
    std::string policy_host = where.host;
    if (where.backend != nullptr) {
      policy_host = where.backend->name;
      error_code literal_ec;
      const auto literal = net::ip::make_address(where.backend->host, literal_ec);
      dial_address = literal_ec ? std::nullopt : std::optional<net::ip::address>(literal);
      dial_host = where.backend->host;
    }
    config::request req{who.source, who.user, who.listener, policy_host, std::nullopt, where.port};
    // The upstream a deciding rule routes through; null: the rule dials directly.
    const auto via_of = [&opts](const config::decision& d) -> const config::upstream_config* {
      if (opts.routes == nullptr || d.rule_index < 0) return nullptr;
      const auto& rules = opts.routes->rules;
      if (static_cast<std::size_t>(d.rule_index) >= rules.size()) return nullptr;
      const std::string& via = rules[static_cast<std::size_t>(d.rule_index)].via;
      if (via.empty()) return nullptr;
      for (const auto& u : opts.routes->upstreams) {
        if (config::host_equals(u.name, via)) return &u;
      }
      return nullptr;
    };
    const bool resolved_here = !dial_address;

    std::vector<tcp::endpoint> candidates;
    if (dial_address) {
      candidates.emplace_back(*dial_address, where.port);
    } else {
      const config::decision early = pol.decide(req);
      if (early.result == config::verdict::deny) {
        out.result = outcome::denied;
        out.rule = std::string(early.rule_name);
        co_return out;
      }
      if (const config::upstream_config* u = early.result == config::verdict::allow ? via_of(early) : nullptr;
          u != nullptr && u->resolve == config::upstream_resolve::upstream) {
        // The upstream resolves the name: the gateway never sees the address.
        out.rule = std::string(early.rule_name);
        out.result = outcome::success;
        out.via = via_request{u, dial_host, {}, where.port};
        co_return out;
      }
      tcp::resolver resolver(ex);
      dl.watch(&resolver);
      auto [ec, results] = co_await resolver.async_resolve(dial_host, std::to_string(where.port),
                                                           tcp::resolver::numeric_service, use_ec);
      dl.watch(nullptr);
      if (ec) {
        out.result = outcome_of_connect_error(ec);
        if (out.result == outcome::general_failure || out.result == outcome::connect_timeout) {
          out.result = ec == net::error::operation_aborted ? outcome::connect_timeout : outcome::host_unreachable;
        }
        co_return out;
      }
      for (const auto& r : results) {
        candidates.push_back(r.endpoint());
      }
    }

    bool any_allowed = false;
    error_code last_error = net::error::host_not_found;
    for (const tcp::endpoint& ep : candidates) {
      req.address = to_config_address(ep.address());
      if (never_dialled(*req.address)) {
        // The kernel delivers 0.0.0.0/8 and :: to loopback, and a TCP connect to a group or the
        // broadcast address is never a service: no rule can allow them.
        if (!any_allowed && out.rule.empty()) {
          out.rule = std::string(reserved_rule);
        }
        continue;
      }
      const config::decision d = pol.decide(req);
      if (d.result != config::verdict::allow) {
        if (!any_allowed && out.rule.empty()) {
          out.rule = std::string(d.rule_name);
        }
        continue;
      }
      const config::upstream_config* u = via_of(d);
      if (u != nullptr && resolved_here && u->resolve == config::upstream_resolve::upstream) {
        // The gateway resolved the name only because an earlier rule needs an address; this rule
        // gives names to its upstream, which may resolve them elsewhere: no address it would
        // dial was decided, so this is a deny (docs/upstreams.md).
        if (!any_allowed && out.rule.empty()) {
          out.rule = std::string(d.rule_name);
        }
        continue;
      }
      if (!any_allowed) {
        out.rule = std::string(d.rule_name);
        any_allowed = true;
        if (u != nullptr) out.via = via_request{u, {}, {}, where.port};
      }
      if (out.via) {
        // The first allowed address chose the route; addresses another rule routes otherwise wait.
        if (u == out.via->upstream) out.via->addresses.push_back(ep);
        continue;
      }
      if (u != nullptr) {
        continue;
      }
      out.dialled = ep;
      if (opts.backend_down) {
        last_error = net::error::host_unreachable;
        break;
      }
      tcp::socket s(ex);
      error_code bind_ec;
      if (!bind_source(s, ep, opts, bind_ec)) {
        log::warn("connector", "cannot bind source ", opts.bind->to_string(), " to dial ", to_string(ep), ": ",
                  bind_ec.message(), "; connecting from the default address");
        s = tcp::socket(ex);
      }
      auto [ec] = co_await s.async_connect(ep, dl.token());
      if (!ec) {
        tune(s);
        out.rule = std::string(d.rule_name);
        out.result = outcome::success;
        out.socket.emplace(std::move(s));
        co_return out;
      }
      last_error = ec;
      if (ec == net::error::operation_aborted) {
        break;
      }
    }
    if (out.via) {
      out.dialled = out.via->addresses.front();
      out.result = opts.backend_down ? outcome::host_unreachable : outcome::success;
      if (opts.backend_down) out.via.reset();
      co_return out;
    }
    out.result = any_allowed ? outcome_of_connect_error(last_error) : outcome::denied;
  } catch (const std::exception& e) {
    log::error("connector", "dial failed: ", e.what());
    out.result = outcome::general_failure;
  }
  co_return out;
}

}  // namespace

net::awaitable<dial_result> dial(const config::policy& pol, dial_identity who, target where, phase_deadline& dl,
                                 dial_options opts) {
  return dial_impl(pol, who, std::move(where), dl, opts);
}

session_identity identity_of(const dial_identity& who, const target& where, const tcp::endpoint& dialled) {
  session_identity id;
  id.source = who.source;
  id.policy_host = where.backend != nullptr ? where.backend->name : where.host;
  id.port = where.port;
  id.dialled = to_config_address(dialled.address());
  return id;
}

outcome record_dial(access_record& rec, const dial_result* dialled) {
  rec.result = dialled != nullptr ? dialled->result : outcome::connect_timeout;
  if (dialled != nullptr) {
    rec.rule = dialled->rule;
    if (dialled->dialled.port() != 0) {
      rec.dialled = to_string(dialled->dialled);
    }
  }
  return rec.result;
}

net::awaitable<outcome> secure_backend(tunnel::client_stream& upstream, const config::backend_config* backend,
                                       const runtime_snapshot& snapshot, access_record& rec,
                                       net::cancellation_slot cancel) {
  net::ssl::context* tls = backend != nullptr ? snapshot.tls_of(*backend) : nullptr;
  if (tls == nullptr) {
    co_return outcome::success;
  }
  const std::string& name = backend->tls->server_name.empty() ? backend->host : backend->tls->server_name;
  const error_code ec = co_await upstream.connect_tls(*tls, name, cancel);
  if (!ec) {
    co_return outcome::success;
  }
  // A backend that takes TCP but never finishes the handshake is as broken as one that fails it.
  rec.tls_error =
      ec == net::error::operation_aborted ? "handshake timed out" : tunnel::tls_failure_reason(upstream.ssl(), ec);
  rec.result = outcome::backend_tls_failed;
  log::warn("tls", "backend '", backend->name, "' at ", rec.dialled, ": handshake failed: ", rec.tls_error);
  co_return rec.result;
}

}  // namespace edgerelay::proxy
