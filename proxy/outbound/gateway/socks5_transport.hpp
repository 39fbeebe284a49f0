// SOCKS5 inside TLS: a session is one connection from the route, on which the gateway's listener
// (protocols: socks5, tls) is asked for the target with SOCKS5 and RFC 1929 credentials. No
// in-band control: a break cannot be carried (docs/client.md says which transport to use).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "proxy/outbound/gateway/transport.hpp"

namespace edgerelay::proxy::gateway {

class socks5_transport final : public transport {
 public:
  /// `user` empty: no credentials offered (the gateway's listener has auth: none, or mTLS).
  /// `backend_ports`: the service port (portbase + 1) of each backend the client may name, by
  /// lower-case name: SOCKS5 asks for a backend by its name and that port.
  socks5_transport(std::string user, std::string password, std::map<std::string, std::uint16_t> backend_ports);
  net::awaitable<opened_tunnel> open(const gateway_route& route, const tunnel_request& what,
                                     phase_deadline& dl) const override;

 private:
  std::string user_;
  std::string password_;  ///< never logged
  std::map<std::string, std::uint16_t> backend_ports_;
};

}  // namespace edgerelay::proxy::gateway
