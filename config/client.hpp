// The client mode's own keys (`gateway`, `proxy`) and what they mean once the environment is read.
//
// `edgerelay client --config FILE` reads the gateway's schema (listeners, rules, limits, log) plus
// these keys; config/load.cpp reads them (load_mode::client), this header says what they are.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgerelay::config {

/// How a session reaches its gateway once a connection is there (docs/client.md).
enum class gateway_transport : std::uint8_t { automatic, websocket, polling, socks5 };

std::string_view to_string(gateway_transport t) noexcept;

/// `gateway.tls`: the gateway's certificate is verified against `ca` (the system store when empty)
/// for `server_name` (the address's host when empty); `cert`/`key` present a client certificate.
struct gateway_tls_config {
  std::string ca;
  std::string server_name;
  std::string cert;
  std::string key;
};

struct gateway_config {
  std::string host;  ///< name or literal (IPv6 without brackets)
  std::uint16_t port = 0;
  std::optional<gateway_tls_config> tls;
  gateway_transport transport = gateway_transport::automatic;
  std::string path = "/edgerelay";
  std::string user;           ///< empty: no Basic credentials (mTLS or an open gateway listener)
  std::string password_file;  ///< path, resolved against the config's directory; read at start
};

/// `proxy`: the corporate proxy on the way to the gateway.
struct proxy_config {
  std::string url;  ///< as written: http://host:port
  std::string host;
  std::uint16_t port = 0;
  std::string user;
  std::string password_file;
};

/// What `edgerelay client` reads beyond the gateway's schema.
struct client_config {
  gateway_config gateway;
  std::optional<proxy_config> proxy;  ///< unset: taken from the environment, if there
};

/// `http://host:port[/]` (the only proxy scheme: TLS to the proxy would put the gateway's TLS
/// inside another). Credentials in the URL are refused: they would end up in process listings
/// and logs. On failure `why` says what was wrong.
std::optional<proxy_config> parse_proxy_url(std::string_view url, std::string* why = nullptr);

/// The proxy the client uses for `gateway`: the config's, else https_proxy / HTTPS_PROXY (a TLS
/// gateway) or http_proxy / HTTP_PROXY (a plain one), unless no_proxy / NO_PROXY names the
/// gateway's host (`*`, a host, `.suffix` or `suffix` for subdomains, an IP literal; ports are
/// ignored). `env` returns a variable's value, or nullopt when unset. A malformed variable is an
/// error in `why`, never silently ignored.
struct effective_proxy {
  std::optional<proxy_config> proxy;
  std::string source;  ///< "config", "https_proxy", ... for the start-up log; empty: direct
  std::string error;   ///< set when a variable could not be used
};
effective_proxy proxy_for(const client_config& cfg,
                          const std::function<std::optional<std::string>(std::string_view)>& env);

/// True when `no_proxy` (comma-separated) exempts `host`.
bool no_proxy_matches(std::string_view no_proxy, std::string_view host) noexcept;

/// A password file's secret: its first line, without the line end. Empty file, unreadable file or
/// a file over 4 KiB are errors in `why` (naming the path, never the content).
std::optional<std::string> read_secret_file(const std::string& path, std::string* why = nullptr);

}  // namespace edgerelay::config
