// Backend health checks (see health.hpp).
#include "proxy/runtime/health.hpp"

#include <algorithm>

#include <boost/asio/this_coro.hpp>

#include "proxy/core/phase_deadline.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/observe/log.hpp"
#include "sql602/runtime/udp_door.hpp"

namespace edgerelay::proxy {
namespace {

/// A TCP connect to `ep` within `limit`; nullopt when `limit` passed first.
net::awaitable<std::optional<error_code>> connect_probe(tcp::endpoint ep, std::chrono::milliseconds limit) {
  tcp::socket s(co_await net::this_coro::executor);
  phase_deadline dl(s.get_executor());
  dl.start(limit);
  auto [ec] = co_await s.async_connect(ep, dl.token());
  const bool expired = dl.expired();
  co_await dl.settle();  // no timer handler may outlive `dl`
  error_code ignored;
  s.close(ignored);
  if (ec && expired) {
    co_return std::nullopt;
  }
  co_return ec;
}

}  // namespace

std::chrono::milliseconds probe_timeout(const config::backend_config& b) noexcept {
  return b.health_check ? b.health_check->timeout : std::chrono::milliseconds(2000);
}

net::awaitable<probe_report> probe_backend(config::backend_config b, std::chrono::milliseconds timeout) {
  probe_report r;
  r.resolved = co_await lookup_host(b.host);
  if (r.resolved.empty()) {
    r.detail = concat("host '", b.host, "' does not resolve");
    co_return r;
  }
  const net::ip::address address = r.resolved.front();
  const tcp::endpoint ep(address, static_cast<std::uint16_t>(b.portbase + 1));
  const auto ec = co_await connect_probe(ep, timeout);
  r.tcp_ok = ec && !*ec;
  r.detail = concat("tcp ", to_string(ep), ' ',
                    !ec        ? std::string("timed out")
                    : r.tcp_ok ? std::string("ok")
                               : ec->message());
  if (b.kind == config::backend_kind::sql602) {
    const auto reply = co_await query_server(address, b.portbase, timeout);
    r.discovery_ok = reply.has_value();
    r.detail += concat(", discovery udp ", address.to_string(), ':', b.portbase, reply ? " ok" : " no reply");
  }
  co_return r;
}

bool same_probe(const config::backend_config& a, const config::backend_config& b) noexcept {
  const auto& x = a.health_check;
  const auto& y = b.health_check;
  const bool same_check =
      x.has_value() == y.has_value() && (!x || (x->interval == y->interval && x->timeout == y->timeout));
  return a.host == b.host && a.portbase == b.portbase && a.kind == b.kind && same_check;
}

void health_monitor::start(const config::config& cfg) {
  for (const auto& b : cfg.backends) {
    if (b.health_check) launch(b);
  }
}

std::vector<std::string> health_monitor::follow(const config::config& cfg) {
  std::vector<std::string> stale;
  if (stopped_) return stale;
  for (auto& loop : loops_) {
    if (loop.ended) continue;
    const auto next = std::find_if(cfg.backends.begin(), cfg.backends.end(),
                                   [&loop](const config::backend_config& b) { return b.name == loop.backend.name; });
    if (next == cfg.backends.end() || !same_probe(loop.backend, *next)) {
      end(loop);
      stale.push_back(loop.backend.name);
      log::info("health", "backend '", loop.backend.name, "': health check stopped (",
                next == cfg.backends.end() ? "removed" : "changed", " by the reload)");
    }
  }
  for (const auto& b : cfg.backends) {
    if (!b.health_check) continue;
    const bool running = std::any_of(loops_.begin(), loops_.end(), [&b](const probe_loop& loop) {
      return !loop.ended && loop.backend.name == b.name;
    });
    if (running) continue;
    launch(b);
    if (std::find(stale.begin(), stale.end(), b.name) == stale.end()) stale.push_back(b.name);
    log::info("health", "backend '", b.name, "': health check every ", b.health_check->interval.count(), " ms on ",
              b.host, ':', b.portbase + 1);
  }
  return stale;
}

void health_monitor::stop() {
  stopped_ = true;
  for (auto& loop : loops_) end(loop);
}

void health_monitor::end(probe_loop& loop) {
  loop.ended = true;
  if (loop.sleeping != nullptr) loop.sleeping->cancel();
}

void health_monitor::launch(const config::backend_config& b) {
  auto it = loops_.insert(loops_.end(), probe_loop{.backend = b});
  net::co_spawn(control_, watch(*it), [this, it, name = b.name](const std::exception_ptr& ep) {
    loops_.erase(it);
    if (ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        log::error("health", "backend '", name, "': health check loop failed: ", e.what());
      }
    }
  });
}

net::awaitable<void> health_monitor::watch(probe_loop& loop) {
  const config::backend_config& b = loop.backend;
  net::steady_timer timer(control_);
  while (!loop.ended) {
    const probe_report r = co_await probe_backend(b, b.health_check->timeout);
    // A reload may have ended this loop during the probe: its result is about the old address.
    if (loop.ended) break;
    addresses_->store(b.host, r.resolved);
    const backend_health now = r.up() ? backend_health::up : backend_health::down;
    const backend_health before = board_->set(b.name, now);
    if (before != now) {
      if (now == backend_health::up) {
        log::info("health", "backend '", b.name, "' is up (", r.detail, ")");
      } else {
        log::warn("health", "backend '", b.name, "' is down (", r.detail, "); its sessions fail at once");
      }
    }
    timer.expires_after(b.health_check->interval);
    loop.sleeping = &timer;
    co_await timer.async_wait(use_ec);
    loop.sleeping = nullptr;
  }
}

}  // namespace edgerelay::proxy
