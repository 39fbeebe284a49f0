#include "proxy/outbound/chain_dial.hpp"

#include <algorithm>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>

#include "config/address.hpp"
#include "proxy/core/endpoint.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/hops/hop.hpp"

namespace edgerelay::proxy {

std::string upstream_health::key_of(std::string_view pool, std::string_view member) {
  std::string k;
  for (const char c : pool) k.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  k.push_back('\n');  // never in a name: "a" + "bc" and "ab" + "c" stay apart
  for (const char c : member) k.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  return k;
}

bool upstream_health::is_aside(std::string_view pool, std::string_view member, clock::time_point now) const {
  const std::string k = key_of(pool, member);
  std::lock_guard lock(mu_);
  const auto it = members_.find(k);
  return it != members_.end() && it->second.aside_until > now;
}

void upstream_health::failed(std::string_view pool, std::string_view member, std::uint32_t fail_after,
                             clock::duration set_aside, clock::time_point now) {
  std::string k = key_of(pool, member);
  bool set = false;
  {
    std::lock_guard lock(mu_);
    state& s = members_[std::move(k)];
    ++s.failures;
    if (fail_after > 0 && s.failures >= fail_after) {
      s.failures = 0;
      s.aside_until = now + set_aside;
      set = true;
    }
  }
  if (set) {
    log::warn("upstream", "pool '", pool, "': member '", member, "' failed ", fail_after,
              " time(s) in a row: set aside for ",
              std::chrono::duration_cast<std::chrono::milliseconds>(set_aside).count(), " ms");
  }
}

void upstream_health::succeeded(std::string_view pool, std::string_view member) {
  const std::string k = key_of(pool, member);
  std::lock_guard lock(mu_);
  if (const auto it = members_.find(k); it != members_.end()) {
    it->second.failures = 0;
  }
}

namespace {

struct expander {
  const runtime_snapshot& snapshot;
  const upstream_health* health;
  std::chrono::steady_clock::time_point now;
  std::size_t limit;

  /// The ways through `u`, each with the pool choices `outer` made to reach it.
  std::vector<chain_attempt> expand(const config::upstream_config& u, unsigned depth) const {
    std::vector<chain_attempt> out;
    if (depth > 16) return out;  // the config is acyclic; this only bounds a broken one
    if (u.is_proxy()) {
      out.push_back(chain_attempt{{&u}, {{}}});
      return out;
    }
    if (!u.pool.empty()) {
      std::vector<chain_attempt> aside;
      for (const auto& name : u.pool) {
        const config::upstream_config* m = snapshot.find_upstream(name);
        if (m == nullptr) return {};
        const bool set_aside = health != nullptr && health->is_aside(u.name, m->name, now);
        for (chain_attempt& a : expand(*m, depth + 1)) {
          for (auto& c : a.choices) c.push_back(pool_choice{&u, m->name});
          (set_aside ? aside : out).push_back(std::move(a));
        }
      }
      // Every member aside: they are still tried, in order, rather than failing the session unasked.
      for (auto& a : aside) out.push_back(std::move(a));
      if (out.size() > limit) out.resize(limit);
      return out;
    }
    out.push_back(chain_attempt{});
    for (const auto& name : u.chain) {
      const config::upstream_config* m = snapshot.find_upstream(name);
      if (m == nullptr) return {};
      const std::vector<chain_attempt> tails = expand(*m, depth + 1);
      std::vector<chain_attempt> next;
      for (const chain_attempt& head : out) {
        for (const chain_attempt& tail : tails) {
          if (next.size() >= limit) break;
          chain_attempt joined = head;
          joined.hops.insert(joined.hops.end(), tail.hops.begin(), tail.hops.end());
          joined.choices.insert(joined.choices.end(), tail.choices.begin(), tail.choices.end());
          next.push_back(std::move(joined));
        }
      }
      out = std::move(next);
    }
    return out;
  }
};

hops::hop_kind kind_of(config::upstream_scheme s) noexcept {
  switch (s) {
    case config::upstream_scheme::socks5: return hops::hop_kind::socks5;
    case config::upstream_scheme::socks4a: return hops::hop_kind::socks4a;
    case config::upstream_scheme::http: return hops::hop_kind::http_connect;
    case config::upstream_scheme::https: return hops::hop_kind::https_connect;
  }
  return hops::hop_kind::socks5;
}

hops::hop_description description_of(const runtime_snapshot& snapshot, const config::upstream_config& u) {
  hops::hop_description d;
  d.kind = kind_of(u.scheme);
  d.credentials = {u.user, u.password};
  if (u.scheme == config::upstream_scheme::https) {
    d.tls.context = snapshot.tls_of(u);
    d.tls.server_name = u.tls && !u.tls->server_name.empty() ? u.tls->server_name : u.host;
  }
  return d;
}

/// The next proxy as the one before it is asked for it: its literal address, or its name.
hops::hop_target target_of_proxy(const config::upstream_config& u) {
  hops::hop_target t;
  t.port = u.port;
  error_code ec;
  const auto a = net::ip::make_address(u.host, ec);
  if (!ec) {
    t.address = a;
  } else {
    t.host = u.host;
  }
  return t;
}

void tune(tcp::socket& s) {
  error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
  s.set_option(net::socket_base::keep_alive(true), ignored);
}

/// Resolves and connects to the first proxy of a chain.
net::awaitable<std::optional<tcp::socket>> connect_first(const config::upstream_config& u, tcp::endpoint& tried,
                                                         phase_deadline& dl) {
  const auto ex = co_await net::this_coro::executor;
  tcp::resolver resolver(ex);
  dl.watch(&resolver);
  auto [rec, results] =
      co_await resolver.async_resolve(u.host, std::to_string(u.port), tcp::resolver::numeric_service, use_ec);
  dl.watch(nullptr);
  if (rec) {
    log::warn("upstream", "'", u.name, "': cannot resolve ", u.host, ": ", rec.message());
    co_return std::nullopt;
  }
  for (const auto& r : results) {
    tried = r.endpoint();
    tcp::socket s(ex);
    auto [ec] = co_await s.async_connect(r.endpoint(), dl.token());
    if (!ec) {
      tune(s);
      co_return std::optional<tcp::socket>(std::move(s));
    }
    if (dl.expired()) break;
  }
  co_return std::nullopt;
}

/// Which hop a failure at step `i` (0: the TCP connect) of `a` is blamed on, for the pools: a
/// refusal by hop i of the next proxy is the next proxy's failure (it did not answer the one
/// before it).
std::size_t blamed_hop(std::size_t i, bool refused, std::size_t n) {
  return refused && i + 1 < n ? i + 1 : i;
}

void count_failure(upstream_health* health, const chain_attempt& a, std::size_t hop) {
  if (health == nullptr || hop >= a.choices.size()) return;
  for (const pool_choice& c : a.choices[hop]) {
    health->failed(c.pool->name, c.member, c.pool->fail_after,
                   std::chrono::duration_cast<upstream_health::clock::duration>(c.pool->set_aside),
                   upstream_health::clock::now());
  }
}

void count_success(upstream_health* health, const chain_attempt& a) {
  if (health == nullptr) return;
  for (const auto& per_hop : a.choices) {
    for (const pool_choice& c : per_hop) health->succeeded(c.pool->name, c.member);
  }
}

enum class step_end : std::uint8_t { connected, hop_failed, target_refused };

/// One attempt for one target: connect, then every hop in order.
net::awaitable<step_end> run_attempt(const runtime_snapshot& snapshot, upstream_health* health, const chain_attempt& a,
                                     const hops::hop_target& final_target, chain_result& out, phase_deadline& dl) {
  const std::size_t n = a.hops.size();
  std::optional<tcp::socket> socket = co_await connect_first(*a.hops[0], out.first_hop, dl);
  if (!socket) {
    out.result = dl.expired() ? outcome::connect_timeout : outcome::host_unreachable;
    out.failed_hop = a.hops[0]->name;
    out.detail = dl.expired() ? "upstream_timeout" : "upstream_unreachable";
    if (!dl.expired()) count_failure(health, a, 0);
    co_return step_end::hop_failed;
  }
  tunnel::client_stream stream(std::move(*socket));
  for (std::size_t i = 0; i < n; ++i) {
    const hops::hop_target next = i + 1 < n ? target_of_proxy(*a.hops[i + 1]) : final_target;
    const hops::hop_result r = co_await hops::traverse(stream, description_of(snapshot, *a.hops[i]), next, dl);
    if (r.result == hops::hop_outcome::connected) continue;
    out.result = hops::outcome_of(r);
    out.failed_hop = a.hops[i]->name;
    out.detail = r.detail;
    out.tls_error = r.tls_error;
    stream.close();
    const bool refused = r.result == hops::hop_outcome::refused;
    if (refused && i + 1 == n) co_return step_end::target_refused;
    if (r.result != hops::hop_outcome::timeout) count_failure(health, a, blamed_hop(i, refused, n));
    co_return step_end::hop_failed;
  }
  count_success(health, a);
  out.result = outcome::success;
  out.failed_hop.clear();
  out.detail = {};
  out.stream.emplace(std::move(stream));
  co_return step_end::connected;
}

}  // namespace

std::vector<chain_attempt> attempts_for(const runtime_snapshot& snapshot, const config::upstream_config& via,
                                        const upstream_health* health, std::chrono::steady_clock::time_point now,
                                        std::size_t limit) {
  const expander e{snapshot, health, now, limit};
  std::vector<chain_attempt> out = e.expand(via, 0);
  std::erase_if(out, [](const chain_attempt& a) { return a.hops.empty(); });
  return out;
}

net::awaitable<chain_result> dial_chain(const runtime_snapshot& snapshot, upstream_health* health,
                                        const via_request& req, phase_deadline& dl) {
  chain_result out;
  try {
    const std::vector<chain_attempt> attempts =
        attempts_for(snapshot, *req.upstream, health, std::chrono::steady_clock::now());
    if (attempts.empty()) {
      out.result = outcome::general_failure;
      out.failed_hop = req.upstream->name;
      out.detail = "upstream_unknown";
      co_return out;
    }
    std::vector<hops::hop_target> targets;
    if (req.addresses.empty()) {
      targets.push_back(hops::hop_target{req.host, std::nullopt, req.port});
    }
    for (const tcp::endpoint& ep : req.addresses) {
      targets.push_back(hops::hop_target{{}, ep.address(), ep.port()});
    }
    for (const hops::hop_target& t : targets) {
      if (t.address) out.asked = tcp::endpoint(*t.address, t.port);
      for (const chain_attempt& a : attempts) {
        const step_end end = co_await run_attempt(snapshot, health, a, t, out, dl);
        if (end == step_end::connected) co_return out;
        if (end == step_end::target_refused || dl.expired()) break;
      }
      if (dl.expired()) break;
    }
  } catch (const std::exception& e) {
    log::error("upstream", "dial via '", req.upstream->name, "' failed: ", e.what());
    out.result = outcome::general_failure;
    out.stream.reset();
  }
  co_return out;
}

}  // namespace edgerelay::proxy
