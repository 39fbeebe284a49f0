// The route to the gateway: direct, or through a corporate proxy (CONNECT, or plain-HTTP
// forwarding), then TLS when the gateway has it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/client.hpp"
#include "proxy/outbound/gateway/transport.hpp"

namespace boost::asio::ssl {
class context;
}

namespace edgerelay::proxy::gateway {

/// Answers a proxy's authentication, one connection at a time. Basic is the one scheme built; a
/// connection-oriented one (NTLM, Negotiate) answers the 407's challenge in answer() on the same
/// connection, round after round, which is why the route asks it per round rather than taking a
/// fixed header.
class proxy_authenticator {
 public:
  virtual ~proxy_authenticator() = default;
  /// "Basic", for logs.
  virtual std::string_view scheme() const noexcept = 0;
  /// The Proxy-Authorization value of a connection's first request (preemptive), or empty.
  virtual std::string first() const = 0;
  /// The value to send again after a 407 whose Proxy-Authenticate was `challenge`, in `round`
  /// (1 for the first 407); nullopt when there is nothing more to try (Basic: the credentials
  /// were refused).
  virtual std::optional<std::string> answer(std::string_view challenge, unsigned round) const = 0;
};

/// RFC 7617 Basic: preemptive, one round.
class basic_authenticator final : public proxy_authenticator {
 public:
  basic_authenticator(std::string_view user, std::string_view password);
  std::string_view scheme() const noexcept override { return "Basic"; }
  std::string first() const override { return header_; }
  std::optional<std::string> answer(std::string_view, unsigned) const override { return std::nullopt; }

 private:
  std::string header_;  ///< holds the password: never logged
};

/// How connections reach the gateway.
enum class route_kind : std::uint8_t {
  direct,    ///< TCP to the gateway
  connect,   ///< TCP to the proxy, CONNECT to the gateway
  absolute,  ///< TCP to a plain-HTTP proxy; requests in absolute form (no TLS possible)
};

/// "direct", "connect", "absolute".
std::string_view to_string(route_kind) noexcept;

struct route_settings {
  route_kind kind = route_kind::direct;
  std::string gateway_host;  ///< name or literal, IPv6 without brackets
  std::uint16_t gateway_port = 0;
  std::string proxy_host;  ///< connect and absolute only
  std::uint16_t proxy_port = 0;
  std::shared_ptr<const proxy_authenticator> auth;  ///< null: none offered
  std::shared_ptr<boost::asio::ssl::context> tls;   ///< null: plain (always null for absolute)
  std::string server_name;                          ///< the name the gateway's certificate carries
};

/// "host:port" or "[v6]:port".
std::string authority_of(std::string_view host, std::uint16_t port);

/// A route over TCP, as the settings say. Immutable; shared by every worker.
class tcp_route final : public gateway_route {
 public:
  explicit tcp_route(route_settings s);
  net::awaitable<route_connection> connect(phase_deadline& dl) const override;
  /// "direct to gw:443, TLS" / "CONNECT via proxy:3128 to gw:443, TLS", for the start-up log.
  std::string describe() const;
  route_kind kind() const noexcept { return s_.kind; }

 private:
  net::awaitable<void> proxy_connect(tunnel::client_stream& stream, route_connection& out, phase_deadline& dl) const;
  net::awaitable<void> secure(tunnel::client_stream& stream, route_connection& out, phase_deadline& dl) const;

  route_settings s_;
};

/// The client context for the gateway: TLS 1.2+, verified against `t.ca` (the system store when
/// empty), with the client certificate when `t.cert` is set; a failed verification records the
/// certificate's issuer for failure_of_verify(). Sets `error` (naming the file) and returns null
/// on failure. Control thread: reads files.
std::shared_ptr<boost::asio::ssl::context> make_gateway_tls_context(const config::gateway_tls_config& t,
                                                                    std::string& error);

/// For a handshake that failed on `ssl` with `ec`: the text an operator needs, naming the issuer of
/// the certificate that did not verify and that a TLS-inspecting proxy may be in the way.
std::string describe_tls_failure(SSL* ssl, const error_code& ec, std::string_view server_name);

}  // namespace edgerelay::proxy::gateway
