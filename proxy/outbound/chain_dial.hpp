// The chain dial plan: a session whose deciding rule has `via` reaches its target through the
// upstream proxies that entry names (docs/upstreams.md), hop after hop on one stream, with the
// hop API (hops/hop.hpp) that the client mode's SOCKS5 transport uses too.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/context.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/outbound/connector.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// Pool members that failed: `fail_after` failures in a row set a member aside for `set_aside`
/// (Dante's route.badexpire). Keyed by the pool's and the member's names, so a reload that keeps
/// them keeps what was learned. One per process, shared by every worker: thread-safe.
class upstream_health {
 public:
  using clock = std::chrono::steady_clock;
  /// Whether `member` of `pool` is set aside at `now`.
  bool is_aside(std::string_view pool, std::string_view member, clock::time_point now) const;
  /// One more failure in a row; sets the member aside once it reaches `fail_after` (0: never).
  void failed(std::string_view pool, std::string_view member, std::uint32_t fail_after, clock::duration set_aside,
              clock::time_point now);
  /// The member answered: its count starts again.
  void succeeded(std::string_view pool, std::string_view member);

 private:
  struct state {
    std::uint32_t failures = 0;
    clock::time_point aside_until{};
  };
  static std::string key_of(std::string_view pool, std::string_view member);
  mutable std::mutex mu_;
  std::map<std::string, state> members_;
};

/// A pool choice one attempt made: which member of which pool.
struct pool_choice {
  const config::upstream_config* pool = nullptr;
  std::string_view member;
};

/// One way through an upstream entry: the proxies in order from the gateway, and for each the
/// pool choices that put it there.
struct chain_attempt {
  std::vector<const config::upstream_config*> hops;
  std::vector<std::vector<pool_choice>> choices;  ///< index-parallel to hops
};

/// Every way through `via`, in the order to try them: a pool's members in config order, those
/// set aside in `health` (may be null) after the others. At most `limit` attempts. An entry that
/// names an unknown upstream yields none (the config validation refuses that).
std::vector<chain_attempt> attempts_for(const runtime_snapshot& snapshot, const config::upstream_config& via,
                                        const upstream_health* health, std::chrono::steady_clock::time_point now,
                                        std::size_t limit = 16);

/// A stream through the chain to the target, or why not.
struct chain_result {
  outcome result = outcome::general_failure;
  std::optional<tunnel::client_stream> stream;
  std::string failed_hop;              ///< the upstream (a proxy entry) whose step failed; empty on success
  std::string_view detail;             ///< the hop's detail ("upstream_refused", ...) or "upstream_unreachable"
  std::string tls_error;               ///< an https hop's handshake failure
  tcp::endpoint first_hop;             ///< the first proxy's address, as connected (or last tried)
  std::optional<tcp::endpoint> asked;  ///< the target address the last hop connected to, when asked by address
};

/// Tries the attempts of `req.upstream` in order under `dl`'s current phase: connect to the first
/// proxy (its address is the operator's, not decided by the rules), run each hop's handshake, ask
/// the last for the target. A failure of a pool member counts in `health` (may be null) and the
/// next attempt runs; a refusal of the target by the last hop ends the dial. Never throws.
net::awaitable<chain_result> dial_chain(const runtime_snapshot& snapshot, upstream_health* health,
                                        const via_request& req, phase_deadline& dl);

}  // namespace edgerelay::proxy
