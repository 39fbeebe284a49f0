// Hops: one step of an upstream chain. A hop takes a stream already connected to an upstream
// proxy and turns it, with that proxy's protocol, into a tunnel to the next target.
//
// Generic on purpose: a hop knows a stream, a hop description, a target and a deadline, never
// rules, sessions or config. Upstream chains (chain_dial) and the client mode's gateway hop both
// run on it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/core/asio.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/outcome.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace boost::asio::ssl {
class context;
}

namespace edgerelay::proxy::hops {

/// The protocol spoken to an upstream proxy.
enum class hop_kind : std::uint8_t {
  socks5,         ///< RFC 1928, with RFC 1929 username/password when credentials are set
  socks4a,        ///< SOCKS4a for a name, SOCKS4 for an IPv4 address; the user goes as USERID
  http_connect,   ///< HTTP CONNECT, Basic Proxy-Authorization when credentials are set
  https_connect,  ///< TLS to the proxy first, then HTTP CONNECT inside it
};

/// "socks5", "socks4a", "http", "https" (the URL schemes).
std::string_view to_string(hop_kind) noexcept;

struct hop_credentials {
  std::string user;      ///< empty: none sent
  std::string password;  ///< secret: never logged
};

struct hop_tls {
  boost::asio::ssl::context* context = nullptr;  ///< client context that verifies the proxy (its `ca`)
  std::string server_name;                       ///< the name its certificate must carry
};

/// One upstream proxy as a hop sees it.
struct hop_description {
  hop_kind kind = hop_kind::socks5;
  hop_credentials credentials;
  hop_tls tls;  ///< https_connect only
};

/// Where the tunnel through the hop goes: a name (the proxy resolves it) or an address.
struct hop_target {
  std::string host;                         ///< used when `address` is unset
  std::optional<net::ip::address> address;  ///< set: the proxy is asked for this address
  std::uint16_t port = 0;
};

/// "host:port" or "[v6]:port".
std::string to_string(const hop_target&);

enum class hop_outcome : std::uint8_t {
  connected,
  refused,              ///< the proxy answered the request with a failure
  auth_failed,          ///< the proxy rejected the credentials, or wants a method we cannot offer
  proxy_auth_required,  ///< HTTP 407
  timeout,              ///< the phase deadline passed
  protocol_error,       ///< the answer does not parse
  gone,                 ///< the proxy closed or reset the connection
  tls_failed,           ///< the TLS handshake with an https proxy failed
  bad_target,           ///< the target cannot be said in this protocol (IPv6 to SOCKS4a)
};

struct hop_result {
  hop_outcome result = hop_outcome::protocol_error;
  /// For the access log: "upstream_refused", "upstream_auth", "upstream_407", "upstream_timeout",
  /// "upstream_protocol", "upstream_gone", "upstream_tls", "upstream_bad_target"; empty on success.
  std::string_view detail;
  unsigned code = 0;  ///< the proxy's reply code or HTTP status, where it sent one
  /// What the proxy says it connected from (SOCKS BND.ADDR), if it said.
  std::optional<net::ip::address> bound;
  std::uint16_t bound_port = 0;
  std::string tls_error;  ///< https hops: why the handshake failed
};

/// The session outcome a failed hop stands for (connected: success). A refusal keeps the proxy's
/// meaning where it has one (refused, unreachable, timed out); credentials the gateway holds for a
/// proxy are never the client's, so auth failures are general failures.
outcome outcome_of(const hop_result&) noexcept;

/// Each takes `stream` connected to the proxy and asks it for `next`. Every read and write belongs
/// to `dl`'s current phase, which the caller started. On success the stream is the tunnel, and no
/// byte behind the proxy's answer has been read from it. Never throws.
net::awaitable<hop_result> socks5_hop(tunnel::client_stream& stream, const hop_description& hop, const hop_target& next,
                                      phase_deadline& dl);
net::awaitable<hop_result> socks4a_hop(tunnel::client_stream& stream, const hop_description& hop,
                                       const hop_target& next, phase_deadline& dl);
/// For http_connect; https_connect hops go through https_connect_hop.
net::awaitable<hop_result> connect_hop(tunnel::client_stream& stream, const hop_description& hop,
                                       const hop_target& next, phase_deadline& dl);
/// connect_tls (hop.tls) on the plain stream, then connect_hop.
net::awaitable<hop_result> https_connect_hop(tunnel::client_stream& stream, const hop_description& hop,
                                             const hop_target& next, phase_deadline& dl);

/// The hop of `hop.kind`.
net::awaitable<hop_result> traverse(tunnel::client_stream& stream, const hop_description& hop, const hop_target& next,
                                    phase_deadline& dl);

}  // namespace edgerelay::proxy::hops
