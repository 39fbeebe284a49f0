// SOCKS5 inside TLS: a session is one connection from the route, on which the gateway's listener
// (protocols: socks5, tls) is asked for the target with SOCKS5 and RFC 1929 credentials. No
// in-band control: a break cannot be carried (docs/client.md says which transport to use).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "proxy/outbound/gateway/transport.hpp"

namespace edgerelay::proxy::gateway {

/// A session's upstream that is one stream of the route (SOCKS5 inside TLS): bytes as they are,
/// half-close as TLS close_notify then FIN. The plan hands the stream itself to the pipeline
/// (take_stream()), so such a session relays as a TLS backend's does and HTTP forward proxying,
/// which needs a stream, works over it.
class stream_leg final : public gateway_leg {
 public:
  explicit stream_leg(tunnel::client_stream stream);
  net::awaitable<std::pair<error_code, std::size_t>> read_some(net::mutable_buffer into,
                                                               net::cancellation_slot slot = {}) override;
  net::awaitable<std::pair<error_code, std::size_t>> write(net::const_buffer bytes,
                                                           net::cancellation_slot slot = {}) override;
  net::awaitable<error_code> shutdown_send() override;
  void cancel(error_code& ec) noexcept override;
  void close() noexcept override;
  /// Logged once: SOCKS5 has no in-band control to carry a break.
  void send_break() noexcept override;
  /// The stream; the leg is left with a moved-from one, good only for destruction.
  tunnel::client_stream take_stream() noexcept;

 private:
  tunnel::client_stream stream_;
  bool break_logged_ = false;
};

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
