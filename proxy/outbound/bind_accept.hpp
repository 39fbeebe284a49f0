// SOCKS5 BIND's way out (RFC 1928 section 4): instead of connecting to the target, the gateway
// listens for it. FTP's active mode is the use: the client names the FTP server, the gateway
// tells it where it listens (the client sends that in PORT), and the server connects there.
//
// Two steps, each under the caller's phase: open_bind() decides the request as a dial to the
// expected peer and listens; accept_expected() waits for that peer, closing anyone else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/policy.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/outcome.hpp"
#include "proxy/outbound/connector.hpp"

namespace edgerelay::proxy {

/// Where a BIND listens, or why it does not.
struct bind_offer {
  outcome result = outcome::general_failure;
  std::optional<tcp::acceptor> acceptor;  ///< listening on `listening`, on success
  tcp::endpoint listening;                ///< the first reply's BND.ADDR and BND.PORT
  /// The one address that may connect: the request's address, or the first address of its name
  /// that the rules allow. Set whenever the rules allowed one (also when listening then failed).
  std::optional<net::ip::address> expected;
  std::string rule;  ///< the deciding rule ("default" for default deny); empty: no decision made
};

/// Decides `who`'s BIND for `expected` as a dial to it: the rules on the name first, then on every
/// address it resolves to (the first allowed one becomes the expected peer), on the request's
/// port. The unspecified, multicast and broadcast addresses are never a peer. Then listens on an
/// ephemeral port of the local address the gateway would use toward the peer (the address the
/// kernel picks as the source of a connection to it), so the peer reaches the gateway the way the
/// gateway reaches the peer. The resolve belongs to `dl`'s current phase. Never throws.
net::awaitable<bind_offer> open_bind(const config::policy& pol, dial_identity who, target expected, phase_deadline& dl);

/// How the wait for the peer ended.
struct bind_peer {
  outcome result = outcome::general_failure;
  std::optional<tcp::socket> socket;  ///< the expected peer, TCP_NODELAY and SO_KEEPALIVE set, on success
  tcp::endpoint from;                 ///< the peer's address and port (the second reply's BND)
  std::uint32_t strangers = 0;        ///< connections from other addresses, closed at once
  bool client_gone = false;           ///< the client closed its connection while waiting
};

/// Accepts on `acceptor` until a connection from `expected` arrives (any port: an FTP server
/// connects from port 20 or from any port), closing every other one at once and waiting on.
/// Ends early when `client` closes its connection (the BIND has no one to tell); bytes the
/// client sends early stay in its socket for the relay. The accepts belong to `dl`'s current
/// phase: when it expires the result is connect_timeout. Never throws.
net::awaitable<bind_peer> accept_expected(tcp::acceptor& acceptor, const net::ip::address& expected,
                                          tcp::socket& client, phase_deadline& dl);

/// Whether `a` is `b`, IPv4-mapped IPv6 and IPv4 taken as one.
bool same_host(const net::ip::address& a, const net::ip::address& b) noexcept;

}  // namespace edgerelay::proxy
