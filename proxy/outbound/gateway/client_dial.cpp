#include "proxy/outbound/gateway/client_dial.hpp"

#include <algorithm>
#include <random>
#include <utility>

#include <boost/asio/steady_timer.hpp>

#include "config/address.hpp"
#include "proxy/core/endpoint.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/gateway/socks5_transport.hpp"

namespace edgerelay::proxy::gateway {
namespace {

double random_unit() {
  thread_local std::minstd_rand rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

/// The access log's detail for a tunnel that did not open (static text).
std::string_view detail_of(std::string_view hop) noexcept {
  if (hop == "proxy") return "gateway_proxy_failed";
  if (hop == "proxy_auth") return "gateway_proxy_407";
  if (hop == "connect") return "gateway_connect_refused";
  if (hop == "tls_verify") return "gateway_tls_verify";
  if (hop == "tls") return "gateway_tls";
  if (hop == "upgrade") return "gateway_upgrade_refused";
  if (hop == "polling") return "gateway_polling_failed";
  if (hop == "gateway_auth") return "gateway_auth";
  if (hop == "socks5") return "gateway_refused";
  return "gateway_unreachable";
}

}  // namespace

std::chrono::milliseconds backoff_delay(const backoff_settings& b, unsigned attempt, double unit) noexcept {
  const unsigned shift = std::min(attempt == 0 ? 0U : attempt - 1, 16U);
  const auto grown = std::min<std::int64_t>(b.cap.count(), b.first.count() << shift);
  const double scale = 0.5 + 0.5 * std::clamp(unit, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(grown) * scale));
}

bool worth_retrying(const opened_tunnel& t) noexcept {
  if (t.result == outcome::success) return false;
  if (t.failed_hop == "proxy" || t.failed_hop == "gateway") return true;
  // A proxy that could not reach the gateway answers CONNECT with 502/503/504.
  return t.failed_hop == "connect" && (t.result == outcome::host_unreachable || t.result == outcome::connect_timeout);
}

std::string tunnel_target_of(const target& where) {
  if (where.backend != nullptr) return "backend:" + where.backend->name;
  if (where.address) return to_string(tcp::endpoint(*where.address, where.port));
  return (where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host) + ":" +
         std::to_string(where.port);
}

client_dial::client_dial(std::vector<candidate> candidates, std::string gateway_authorization, backoff_settings backoff)
    : candidates_(std::move(candidates)), authorization_(std::move(gateway_authorization)), backoff_(backoff) {}

net::awaitable<opened_tunnel> client_dial::try_candidates(const tunnel_request& what, phase_deadline& dl) const {
  opened_tunnel last;
  const std::size_t first = preferred();
  for (std::size_t i = 0; i < candidates_.size(); ++i) {
    const std::size_t at = (first + i) % candidates_.size();
    const candidate& c = candidates_[at];
    opened_tunnel t = co_await c.carrier->open(*c.route, what, dl);
    if (t.result == outcome::success) {
      if (at != first) {
        log::info("client", "gateway reached by ", c.name, "; new sessions use it first");
        preferred_.store(at, std::memory_order_relaxed);
      }
      co_return t;
    }
    // A refusal of the target itself (denied, unreachable behind the gateway) is the gateway's
    // answer: another transport would get the same one.
    if (t.failed_hop.empty()) co_return t;
    if (candidates_.size() > 1) {
      log::warn("client", c.name, " failed at the ", t.failed_hop, " hop: ", t.detail);
    }
    last = std::move(t);
    if (dl.expired()) break;
  }
  co_return last;
}

namespace {

/// A client session's breaks: in-band on its tunnel (the WebSocket transport's break control).
class leg_breaks final : public backend_hold {
 public:
  explicit leg_breaks(gateway_leg& leg) : leg_(&leg) {}
  break_result send_break() override {
    leg_->send_break();
    return break_result::sent;
  }

 private:
  /// The session's upstream leg. It goes in the same synchronous teardown of the session's frame,
  /// on the session's thread, as this hold's break-table entry, so a break posted there finds both
  /// or neither.
  gateway_leg* leg_;
};

}  // namespace

net::awaitable<dialled_upstream> client_dial::dial(const session_context& ctx, const dial_identity& who,
                                                   const target& where, access_record& rec, phase_deadline& dl) const {
  dialled_upstream out;
  // The rules see what the application asked for; the gateway resolves and decides again.
  const std::string host = where.backend != nullptr ? where.backend->name : where.host;
  config::request req{who.source, who.user, who.listener, host, std::nullopt, where.port, config::transport::tcp};
  if (where.address) req.address = to_config_address(*where.address);
  const config::decision d = ctx.snapshot->pol.decide(req);
  rec.rule = std::string(d.rule_name);
  if (d.result != config::verdict::allow) {
    out.result = outcome::denied;
    if (d.result == config::verdict::needs_address) rec.detail = "needs_address";
    rec.result = out.result;
    co_return out;
  }
  const tunnel_request what{tunnel_target_of(where), false, authorization_};
  opened_tunnel t;
  for (unsigned attempt = 0;; ++attempt) {
    t = co_await try_candidates(what, dl);
    if (t.result == outcome::success || !worth_retrying(t) || attempt + 1 >= backoff_.max_attempts || dl.expired()) {
      break;
    }
    net::steady_timer wait(co_await net::this_coro::executor);
    wait.expires_after(backoff_delay(backoff_, attempt + 1, random_unit()));
    auto [ec] = co_await wait.async_wait(dl.token());
    if (ec || dl.expired()) break;
  }
  if (dl.expired() && t.result != outcome::success) {
    t.result = outcome::connect_timeout;
    if (t.failed_hop.empty()) t.failed_hop = "gateway";
    if (t.detail.empty()) t.detail = "no tunnel to the gateway within the connect timeout";
  }
  rec.dialled = candidates_.empty() ? std::string() : "gateway";
  out.result = t.result;
  rec.result = t.result;
  if (t.result != outcome::success) {
    rec.detail = t.failed_hop.empty() ? std::string_view("gateway_refused") : detail_of(t.failed_hop);
    const std::uint64_t streak = failing_.fetch_add(1, std::memory_order_relaxed);
    if (!t.failed_hop.empty() && streak == 0) {
      log::warn("client", "no tunnel to the gateway for ", rec.target, ": ", t.failed_hop, " hop: ", t.detail);
    } else if (!t.failed_hop.empty()) {
      log::debug("client", "no tunnel to the gateway for ", rec.target, ": ", t.failed_hop, " hop: ", t.detail);
    } else {
      log::info("client", "the gateway refused ", rec.target, ": ", t.detail);
    }
    co_return out;
  }
  if (failing_.exchange(0, std::memory_order_relaxed) != 0) {
    log::info("client", "the gateway is reachable again");
  }
  if (auto* streamed = dynamic_cast<stream_leg*>(t.leg.get())) {
    out.stream.emplace(streamed->take_stream());  // relayed and forwarded as any TLS upstream
  } else {
    out.leg = std::move(t.leg);
    auto* carrier = dynamic_cast<gateway_leg*>(out.leg.get());
    if (carrier != nullptr && ctx.services != nullptr && ctx.services->inband_breaks != nullptr) {
      // The listener's UDP door finds the session by its client, as the 602SQL server would.
      const net::any_io_executor here = co_await net::this_coro::executor;
      std::string backend = where.backend != nullptr ? where.backend->name : std::string();
      out.hold = ctx.services->inband_breaks->add_inband(who.source, std::move(backend), std::string(who.listener),
                                                         here, std::make_unique<leg_breaks>(*carrier));
    }
  }
  out.identity.source = who.source;
  out.identity.policy_host = host;
  out.identity.port = where.port;
  co_return out;
}

}  // namespace edgerelay::proxy::gateway
