// SOCKS5 BIND: the decision, the listening socket and the wait for the expected peer.
#include "proxy/outbound/bind_accept.hpp"

#include <array>
#include <exception>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>

#include "config/address.hpp"
#include "proxy/core/endpoint.hpp"
#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {
namespace {

/// What the access log names as the deciding "rule" of a BIND refused for its address alone.
constexpr std::string_view reserved_rule = "never-dialled-address";

/// Pending connections the kernel keeps for one BIND: the expected peer and a few strangers.
constexpr int bind_backlog = 4;

bool never_a_peer(const config::ip_address& a) noexcept {
  return config::is_unspecified_range(a) || config::is_multicast(a) || config::is_limited_broadcast(a);
}

net::ip::address plain(const net::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  }
  return a;
}

/// The address the kernel would pick as the source of a connection to `peer`: a UDP socket
/// "connected" to it sends nothing, only looks up the route.
std::optional<net::ip::address> local_address_toward(const net::any_io_executor& ex, const net::ip::address& peer,
                                                     std::uint16_t port, error_code& ec) {
  udp::socket probe(ex);
  const udp::endpoint to(peer, port == 0 ? 9 : port);
  probe.open(to.protocol(), ec);
  if (ec) {
    return std::nullopt;
  }
  probe.connect(to, ec);
  if (ec) {
    return std::nullopt;
  }
  const auto local = probe.local_endpoint(ec);
  if (ec) {
    return std::nullopt;
  }
  return local.address();
}

/// The candidate peers of `where`: its address, or what its name resolves to (empty on a
/// resolve error, set in `ec`).
net::awaitable<std::vector<net::ip::address>> candidates_of(const target& where, phase_deadline& dl, error_code& ec) {
  std::vector<net::ip::address> out;
  if (where.address) {
    out.push_back(plain(*where.address));
    co_return out;
  }
  tcp::resolver resolver(co_await net::this_coro::executor);
  dl.watch(&resolver);
  auto [resolve_ec, results] =
      co_await resolver.async_resolve(where.host, std::to_string(where.port), tcp::resolver::numeric_service, use_ec);
  dl.watch(nullptr);
  ec = resolve_ec;
  for (const auto& r : results) {
    out.push_back(plain(r.endpoint().address()));
  }
  co_return out;
}

net::awaitable<bind_offer> open_bind_impl(const config::policy& pol, dial_identity who, target expected,
                                          phase_deadline& dl) {
  bind_offer out;
  config::request req{who.source, who.user, who.listener, expected.host, std::nullopt, expected.port};
  if (!expected.address) {
    const config::decision early = pol.decide(req);
    if (early.result == config::verdict::deny) {
      out.result = outcome::denied;
      out.rule = std::string(early.rule_name);
      co_return out;
    }
  }
  error_code ec;
  const std::vector<net::ip::address> candidates = co_await candidates_of(expected, dl, ec);
  if (ec) {
    out.result = ec == net::error::operation_aborted ? outcome::connect_timeout : outcome::host_unreachable;
    co_return out;
  }
  for (const net::ip::address& a : candidates) {
    req.address = to_config_address(a);
    if (never_a_peer(*req.address)) {
      if (out.rule.empty()) {
        out.rule = std::string(reserved_rule);
      }
      continue;
    }
    const config::decision d = pol.decide(req);
    if (d.result == config::verdict::allow) {
      out.rule = std::string(d.rule_name);
      out.expected = a;
      break;
    }
    if (out.rule.empty()) {
      out.rule = std::string(d.rule_name);
    }
  }
  if (!out.expected) {
    out.result = outcome::denied;
    co_return out;
  }
  const auto ex = co_await net::this_coro::executor;
  const auto local = local_address_toward(ex, *out.expected, expected.port, ec);
  if (!local) {
    out.result = outcome_of_connect_error(ec);
    log::warn("bind", "no route toward the expected peer ", out.expected->to_string(), ": ", ec.message());
    co_return out;
  }
  tcp::acceptor acceptor(ex);
  const tcp::endpoint at(*local, 0);
  acceptor.open(at.protocol(), ec);
  if (!ec) {
    acceptor.bind(at, ec);
  }
  if (!ec) {
    acceptor.listen(bind_backlog, ec);
  }
  if (!ec) {
    out.listening = acceptor.local_endpoint(ec);
  }
  if (ec) {
    log::warn("bind", "cannot listen on ", local->to_string(), " for a BIND: ", ec.message());
    out.result = outcome::general_failure;
    co_return out;
  }
  out.acceptor.emplace(std::move(acceptor));
  out.result = outcome::success;
  co_return out;
}

void tune(tcp::socket& s) {
  error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
  s.set_option(net::socket_base::keep_alive(true), ignored);
}

/// One accepted connection: the expected peer (true), or a stranger closed at once (false).
bool take_if_expected(tcp::socket& accepted, const net::ip::address& expected, bind_peer& out) {
  error_code ec;
  const tcp::endpoint from = accepted.remote_endpoint(ec);
  if (!ec && same_host(from.address(), expected)) {
    tune(accepted);
    out.from = tcp::endpoint(plain(from.address()), from.port());
    out.socket.emplace(std::move(accepted));
    out.result = outcome::success;
    return true;
  }
  ++out.strangers;
  log::info("bind", "closed a connection from ", ec ? std::string("an unknown address") : to_string(from),
            " to a BIND waiting for ", expected.to_string());
  accepted.close(ec);
  return false;
}

/// An accept that failed: whether the wait goes on (a connection that went away before it was
/// taken), and the outcome when it does not.
bool accept_goes_on(const error_code& ec, phase_deadline& dl, bind_peer& out) {
  if (ec == net::error::connection_aborted) {
    return true;
  }
  out.result =
      dl.expired() || ec == net::error::operation_aborted ? outcome::connect_timeout : outcome::general_failure;
  if (out.result == outcome::general_failure) {
    log::warn("bind", "accept failed: ", ec.message());
  }
  return false;
}

/// One accept's completion: true when it ends the wait with `out` (the peer, or why not).
bool accept_ends_wait(const error_code& ec, tcp::socket& accepted, const net::ip::address& expected, phase_deadline& dl,
                      bind_peer& out) {
  if (ec) return !accept_goes_on(ec, dl, out);
  return take_if_expected(accepted, expected, out);
}

net::awaitable<bind_peer> accept_expected_impl(tcp::acceptor& acceptor, net::ip::address expected, tcp::socket& client,
                                               phase_deadline& dl) {
  bind_peer out;
  bool watch_client = true;
  for (;;) {
    if (watch_client) {
      // Either the peer arrives or the client goes: wait_for_one cancels the other and the group
      // ends only when both have completed, so nothing outlives this frame.
      auto [order, accept_ec, accepted, wait_ec] =
          co_await net::experimental::make_parallel_group(acceptor.async_accept(net::deferred),
                                                          client.async_wait(net::socket_base::wait_read, net::deferred))
              .async_wait(net::experimental::wait_for_one(), dl.token());
      if (order[0] == 1) {
        error_code available_ec;
        if (!wait_ec && client.available(available_ec) > 0 && !available_ec) {
          watch_client = false;  // it spoke early: its bytes wait in the socket for the relay
          continue;
        }
        if (dl.expired()) {
          out.result = outcome::connect_timeout;
        } else {
          out.client_gone = true;
          out.result = outcome::general_failure;
        }
        co_return out;
      }
      if (accept_ends_wait(accept_ec, accepted, expected, dl, out)) {
        co_return out;
      }
    } else {
      auto [accept_ec, accepted] = co_await acceptor.async_accept(dl.token());
      if (accept_ends_wait(accept_ec, accepted, expected, dl, out)) {
        co_return out;
      }
    }
  }
}

}  // namespace

bool same_host(const net::ip::address& a, const net::ip::address& b) noexcept {
  return to_config_address(a) == to_config_address(b);
}

net::awaitable<bind_offer> open_bind(const config::policy& pol, dial_identity who, target expected,
                                     phase_deadline& dl) {
  try {
    co_return co_await open_bind_impl(pol, who, std::move(expected), dl);
  } catch (const std::exception& e) {
    log::error("bind", "opening a BIND failed: ", e.what());
  }
  co_return bind_offer{};
}

net::awaitable<bind_peer> accept_expected(tcp::acceptor& acceptor, const net::ip::address& expected,
                                          tcp::socket& client, phase_deadline& dl) {
  try {
    co_return co_await accept_expected_impl(acceptor, expected, client, dl);
  } catch (const std::exception& e) {
    log::error("bind", "waiting for a BIND's peer failed: ", e.what());
  }
  co_return bind_peer{};
}

}  // namespace edgerelay::proxy
