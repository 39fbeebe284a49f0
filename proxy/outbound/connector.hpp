// Connector: resolve a target, check policy on every address it would dial, connect.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/policy.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/endpoint.hpp"
#include "proxy/core/context.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/observe/outcome.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "socks/target.hpp"
#include "proxy/core/snapshot.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// A destination as a client named it: a host name, or an address, and a port.
struct target {
  std::string host;                         ///< empty when the client gave an address
  std::optional<net::ip::address> address;  ///< set when the client gave an address
  std::uint16_t port = 0;
  /// Set when the session goes to a named backend: the policy sees the backend's name (so
  /// `backend:NAME` rules match) and the connector dials the backend's host.
  const config::backend_config* backend = nullptr;
};

class backend_addresses;

/// The backend a target names, if any: its host equals a backend's name (`CONNECT sql:5002`,
/// SOCKS5 domain `sql`), or it is a backend's host and portbase + 1 (the stock 602SQL client
/// behind a SOCKS4 firewall names the server itself). An address matches a backend's host when it
/// is that IP literal or, for a host name, one of the addresses `resolved` last saw it resolve to
/// (null: literals only); the first backend in config order wins. Sets `backend`; leaves the port
/// as asked. Takes one shared lock on `resolved` at most; never resolves.
void route_to_backend(const config::config& cfg, const backend_addresses* resolved, target& t);
/// The same for a session: its snapshot's backends and its services' resolved addresses.
void route_to_backend(const session_context& ctx, target& t);

/// The target of a `forward` listener's sessions: the backend's host, port portbase + 1.
target backend_target(const config::backend_config& b);

target from_socks(const socks::target_address& t);
/// "host:port" or "[v6]:port", for logs.
std::string to_string(const target& t);

/// Who asks, for the policy.
struct dial_identity {
  config::ip_address source;
  std::string_view user;
  std::string_view listener;
};

/// What a connected session's policy decision rested on, kept so the decision can be made again
/// when a reload asks for it (reload: recheck_sessions).
struct session_identity {
  config::ip_address source;
  std::string policy_host;                    ///< the name the rules saw (backend name for backends)
  std::optional<config::ip_address> dialled;  ///< set once the upstream is connected
  std::uint16_t port = 0;
};

/// The identity of a session that `who` connected to `where`, at `dialled`.
session_identity identity_of(const dial_identity& who, const target& where, const tcp::endpoint& dialled);

/// What the rules sent through an upstream: the entry, and the target to ask of its last hop
/// (a name with `resolve: upstream`, else each allowed address in turn).
struct via_request {
  const config::upstream_config* upstream = nullptr;
  std::string host;                      ///< asked by name when `addresses` is empty
  std::vector<tcp::endpoint> addresses;  ///< allowed by the rules, in the resolver's order
  std::uint16_t port = 0;
};

struct dial_result {
  outcome result = outcome::general_failure;
  std::optional<tcp::socket> socket;  ///< connected, TCP_NODELAY and SO_KEEPALIVE set, on success
  tcp::endpoint dialled;              ///< the address connected to (or last tried)
  std::string rule;                   ///< the deciding rule's name ("default" for default deny)
  /// Set, with result success and no socket, when the deciding rule has `via`: the caller dials
  /// the upstream (chain_dial.hpp) instead.
  std::optional<via_request> via;
};

/// How a dial goes beyond the policy: a source address to bind, a backend known to be down.
struct dial_options {
  /// Bound as the source of an IPv4 connect (a backend's egress address); ignored for IPv6.
  std::optional<net::ip::address_v4> bind;
  /// The backend's health check says it is down: an allowed dial fails at once (host_unreachable)
  /// instead of waiting for a connect that cannot succeed.
  bool backend_down = false;
  /// The config whose rules the policy was compiled from: a rule's `via` sends the session to an
  /// upstream (dial_result::via). Null: rules are taken as dialling directly (callers that never
  /// reach a `via` rule's target, such as health checks).
  const config::config* routes = nullptr;
};

/// Decides on the name first (deny early, before DNS), then on every resolved address, and
/// connects to the first allowed address that answers. Never throws. The resolve and every connect
/// belong to the deadline's current phase: when it expires they end with operation_aborted.
net::awaitable<dial_result> dial(const config::policy& pol, dial_identity who, target where, phase_deadline& dl,
                                 dial_options opts = {});

/// Stores what the access log tells of a dial in `rec` (deciding rule, dialled address, result) and
/// returns the outcome; `dialled` null means the connect deadline passed first.
outcome record_dial(access_record& rec, const dial_result* dialled);

/// The TLS client handshake with `backend` over the connected `upstream`, when the backend has
/// `tls` (verified against its `ca`, for its server_name or else its host); success when it has
/// none. A failure, including a handshake cut short through `cancel` by a phase deadline, is
/// backend_tls_failed, recorded in `rec` (result, tls_error) and logged.
net::awaitable<outcome> secure_backend(tunnel::client_stream& upstream, const config::backend_config* backend,
                                       const runtime_snapshot& snapshot, access_record& rec,
                                       net::cancellation_slot cancel = {});

}  // namespace edgerelay::proxy
