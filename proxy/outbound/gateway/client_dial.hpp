// The client mode's dial plan: a local session's upstream is a tunnel to the gateway.
//
// The client decides on what its local application asked for (the rules see the name, or the
// address the application gave; the client never resolves a target, the gateway does and decides
// again), then opens a tunnel over one of its candidates: a route (direct, CONNECT, plain-HTTP
// proxy; TLS) with a transport (SOCKS5 inside TLS, WebSocket, polling). `auto` has several
// candidates, tried in order from the one that last worked; which one that is, is shared by every
// worker (an atomic owned by the plan, which the client command owns).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/outbound/dial_plan.hpp"
#include "proxy/outbound/gateway/transport.hpp"

namespace edgerelay::proxy::gateway {

/// One way to the gateway: a route and a transport over it.
struct candidate {
  std::string name;  ///< for logs: "websocket over CONNECT+TLS", "socks5 over TLS", ...
  std::shared_ptr<const gateway_route> route;
  std::shared_ptr<const transport> carrier;
};

/// Retries of a session's tunnel while the gateway is unreachable: the n-th wait is
/// min(cap, first * 2^n), scaled by a random factor in [0.5, 1], and every wait and attempt stays
/// within the session's connect timeout.
struct backoff_settings {
  std::chrono::milliseconds first{200};
  std::chrono::milliseconds cap{3000};
  unsigned max_attempts = 6;
};

/// The wait before attempt `attempt` (1 for the first retry), `unit` in [0, 1) the random draw.
std::chrono::milliseconds backoff_delay(const backoff_settings& b, unsigned attempt, double unit) noexcept;

/// True for a failure that a later attempt may not meet (the gateway or proxy unreachable or slow);
/// false for an answer that will not change (denied, 407, TLS verification, a refused upgrade).
bool worth_retrying(const opened_tunnel& t) noexcept;

class client_dial final : public dial_plan {
 public:
  /// `gateway_authorization`: the `Authorization` value for the gateway (Basic), or empty.
  client_dial(std::vector<candidate> candidates, std::string gateway_authorization, backoff_settings backoff = {});

  net::awaitable<dialled_upstream> dial(const session_context& ctx, const dial_identity& who, const target& where,
                                        access_record& rec, phase_deadline& dl) const override;

  /// Thread-safe: the index of the candidate that worked last (0 before any did).
  std::size_t preferred() const noexcept { return preferred_.load(std::memory_order_relaxed); }
  const std::vector<candidate>& candidates() const noexcept { return candidates_; }

 private:
  /// One pass over the candidates, from the preferred one.
  net::awaitable<opened_tunnel> try_candidates(const tunnel_request& what, phase_deadline& dl) const;

  std::vector<candidate> candidates_;
  std::string authorization_;  ///< secret: never logged
  backoff_settings backoff_;
  mutable std::atomic<std::size_t> preferred_{0};
  /// Consecutive sessions that found no way to the gateway: the first failure and the recovery are
  /// logged at warn/info, the ones between at debug, so an outage does not flood the log.
  mutable std::atomic<std::uint64_t> failing_{0};
};

/// The gateway's name for `where`: "backend:NAME" for a backend, else "host:port" / "[v6]:port".
std::string tunnel_target_of(const target& where);

}  // namespace edgerelay::proxy::gateway
