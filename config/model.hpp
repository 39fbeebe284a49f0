// The typed, validated, immutable configuration: what config/load.cpp produces from YAML.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "client.hpp"

namespace edgerelay::config {

using duration = std::chrono::milliseconds;

/// An IPv4 or IPv6 address as raw network-order bytes. IPv4-mapped IPv6 (::ffff:a.b.c.d) is
/// always stored folded to IPv4, so comparisons never see two spellings of one address.
struct ip_address {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  ///< v4 uses bytes[0..3]
  friend bool operator==(const ip_address&, const ip_address&) = default;
};

/// "host:port" as written in a bind/udp_bind key; host is a literal address (v6 without brackets).
struct endpoint_spec {
  std::string host;
  std::uint16_t port = 0;
};

/// Where a YAML node stood, for diagnostics (1-based line and column).
struct source_mark {
  std::string file;
  int line = 0;
  int column = 0;
};

enum class protocol : std::uint8_t { socks5, socks4, http, websocket, polling };
enum class auth_mode : std::uint8_t { none, password };

/// One certificate chain and its private key (PEM file paths).
struct tls_cert {
  std::string cert;
  std::string key;
};

/// File paths as written, except that load_config_file() resolves relative paths against the
/// directory of the config file.
struct tls_files {
  std::string cert;
  std::string key;
  std::string client_ca;            ///< empty: no client certificates asked for
  std::string min_version = "1.2";  ///< "1.2" (default) or "1.3"
  bool required = false;            ///< plaintext clients are closed
  std::vector<tls_cert> certs;      ///< more chains, chosen by SNI; `cert`/`key` may be empty when set
};

/// listeners[].proxy_protocol: the load balancers whose connections start with a PROXY v1/v2
/// header (docs/config.md). From them the header is required; from any other peer it is refused.
struct proxy_protocol_config {
  std::vector<std::string> from;  ///< CIDRs as written, never empty
  source_mark mark;
};

struct listener_config {
  std::string name;
  endpoint_spec bind;
  std::vector<protocol> protocols;  ///< detected from the first bytes when several
  auth_mode auth = auth_mode::none;
  std::optional<tls_files> tls;
  std::optional<proxy_protocol_config> proxy_protocol;  ///< unset: no PROXY headers
  std::string forward;           ///< backend name; non-empty: no handshake, every session goes there
  std::string sql602_tunnel;     ///< backend name for 602SQL HTTP-tunnel POSTs
  std::string fallback = "404";  ///< "404" (default) or a backend name
  std::optional<endpoint_spec> udp_bind;
  /// The WebSocket door's path (protocol websocket); other upgrade paths get 404.
  std::string websocket_path = "/edgerelay";
  /// Protocol polling: a polling session with no request for this long expires (its upstream closes).
  duration polling_idle{60000};
  source_mark mark;
  std::uint32_t max_sessions = 0;  ///< sessions at once on this listener; 0: only limits.max_sessions
  /// SOCKS5 BIND (FTP active mode through the gateway) is served on this listener; off: 0x02.
  bool socks5_bind = false;
};

struct health_check_config {
  duration interval{5000};
  duration timeout{2000};
};

enum class backend_kind : std::uint8_t { tcp, sql602 };

struct ipv4_range {
  std::array<std::uint8_t, 4> first{};
  std::array<std::uint8_t, 4> last{};
};

struct backend_tls {
  std::string ca;
  std::string server_name;
};

struct backend_config {
  std::string name;
  std::string host;
  std::uint16_t portbase = 0;  ///< TCP sessions go to portbase + 1, UDP datagrams to portbase
  backend_kind kind = backend_kind::tcp;
  std::vector<ipv4_range> egress;
  std::optional<health_check_config> health_check;
  std::optional<backend_tls> tls;
  bool send_proxy_v2 = false;  ///< `send_proxy: v2`: a PROXY v2 header with the client's address goes first
  source_mark mark;
};

struct user_config {
  std::string name;
  std::string password_hash;  ///< as printed by `edgerelay passwd`; never logged
  source_mark mark;
};

/// limits.auth_failures: how failed logins are slowed down (docs/config.md, limits).
struct auth_failures_config {
  std::uint32_t max = 5;      ///< failures from one source within `window` that start its back-off
  duration window{60000};     ///< counted from the source's first failure
  duration backoff{30000};    ///< logins from that source are refused, unverified, for this long
  duration user_delay{2000};  ///< cap of the delay before a failure reply for a name that failed `max` times
};

/// limits.tls_handshakes: how many client TLS handshakes run at once (docs/config.md, limits).
/// A handshake holds its TLS state (about 100 KB) until it ends, so these bound the memory that
/// clients who start one and go quiet can make the gateway hold.
struct tls_handshakes_config {
  std::uint32_t max = 512;        ///< handshakes in progress at once, process-wide
  std::uint32_t per_source = 32;  ///< of those, from one client address (an IPv6 /64); at most `max`
};

struct limits_config {
  std::uint32_t max_sessions = 20000;
  std::uint32_t per_source = 512;
  std::uint32_t per_source_rate = 0;  ///< new connections a second from one address; 0: no limit
  duration handshake_timeout{10000};
  duration connect_timeout{10000};
  duration idle_timeout{600000};
  duration fin_timeout{30000};  ///< how long a half-closed tunnel may go without traffic
  duration shutdown_grace{10000};
  auth_failures_config auth_failures;
  tls_handshakes_config tls_handshakes;
  duration bind_timeout{60000};  ///< how long a SOCKS5 BIND waits for its peer to connect
};

enum class log_level : std::uint8_t { debug, info, warn, error };

struct log_config {
  log_level level = log_level::info;
  bool access_json = true;  ///< access: json | off
};

/// The admin listener (docs/config.md, admin): health, status and metrics over plain HTTP.
struct admin_config {
  std::optional<endpoint_spec> bind;  ///< unset: no admin listener
  /// CIDRs as written whose clients may connect; others are closed unanswered. Loopback by default.
  std::vector<std::string> allow{"127.0.0.0/8", "::1/128"};
  /// Names from the top-level `users` whose Basic credentials are asked for; empty: none asked.
  std::vector<std::string> users;
  source_mark mark;
};

struct reload_config {
  bool recheck_sessions = false;
};

/// The protocol an upstream proxy speaks (its URL scheme).
enum class upstream_scheme : std::uint8_t { socks5, socks4a, http, https };
/// Who resolves a target name for sessions routed through an upstream (docs/upstreams.md).
enum class upstream_resolve : std::uint8_t { local, upstream };

/// One `upstreams` entry: a proxy (`url`), a chain of entries (`chain`) or a pool (`pool`).
struct upstream_config {
  std::string name;
  std::string url;  ///< set for a proxy; never holds credentials
  source_mark mark;
  upstream_scheme scheme = upstream_scheme::socks5;
  std::string host;  ///< the proxy's host (name or literal) and port, from the url
  std::uint16_t port = 0;
  std::string user;                ///< empty: no credentials
  std::string password;            ///< read from password_file or password_env at load; secret, never logged
  std::string password_source;     ///< "file PATH" or "env NAME", for summaries
  std::optional<backend_tls> tls;  ///< https: ca and server_name
  upstream_resolve resolve = upstream_resolve::local;
  std::vector<std::string> chain;  ///< entries in order from the gateway
  std::vector<std::string> pool;   ///< entries tried in order; a failing one is set aside
  std::uint32_t fail_after = 3;    ///< pool: failures in a row that set a member aside
  duration set_aside{30000};       ///< pool: how long a member stays aside
  bool is_proxy() const noexcept { return chain.empty() && pool.empty(); }
};

/// One rule as written; policy.hpp compiles these into lookup-friendly form.
struct rule_config {
  std::string name;
  bool allow = false;
  std::vector<std::string> from;       ///< CIDRs as written
  std::vector<std::string> to;         ///< entries as written (see DESIGN.md section 3)
  std::vector<std::string> users;      ///< empty: any
  std::vector<std::string> listeners;  ///< empty: any
  std::string via;                     ///< upstream name, empty: direct
  source_mark mark;
};

/// `user`, `group` and `allow_root` (docs/operations-systemd.md): whom the process runs as once
/// its listeners are bound.
struct run_as_config {
  std::string user;   ///< empty: no drop
  std::string group;  ///< empty: the user's primary group
  bool allow_root = false;
  source_mark user_mark;
  source_mark group_mark;
};

struct config {
  std::string source;    ///< file path, or "<built-in>"
  unsigned workers = 0;  ///< 0: one per core
  std::vector<listener_config> listeners;
  std::vector<backend_config> backends;
  std::vector<user_config> users;
  std::vector<rule_config> rules;
  std::vector<upstream_config> upstreams;
  limits_config limits;
  log_config log;
  admin_config admin;
  reload_config reload;
  run_as_config run_as;
  /// Where a running instance hands its listeners over to `edgerelay --takeover` (docs/upgrade.md);
  /// empty: derived from the config file's path.
  std::string takeover_socket;
  /// Set only by load_mode::client: the `gateway` and `proxy` keys of `edgerelay client`.
  std::optional<client_config> client;
};

}  // namespace edgerelay::config
