// How the 602SQL feature plugs into the pipeline: its backend kind (egress lease, break
// registration, the connect-result refusal of a door) and its HTTP tunnel door.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "proxy/inbound/http_door_extension.hpp"
#include "proxy/outbound/backend_kind.hpp"
#include "sql602/runtime/break_table.hpp"

namespace edgerelay::proxy {

/// kind: sql602. A session holds its egress address and its break-table entry, so breaks from its
/// client find it and reach the server as its egress address.
class sql602_backend_kind : public tcp_backend_kind {
 public:
  sql602_backend_kind(egress_pools& egress, break_table& breaks) : tcp_backend_kind(egress), breaks_(&breaks) {}
  std::unique_ptr<backend_hold> before_dial(const backend_session& s, dial_options& opts) const override;
  void on_connected(const backend_session& s, const config::ip_address& local, const net::ip::address& server,
                    backend_hold* hold) const override;
  /// DT_CONNRESULT with KSE_IP_FILTER for a denied session, else KSE_CONNECTION, so the stock
  /// client reports the reason at once instead of waiting 50 s for the server.
  std::vector<std::uint8_t> door_refusal(outcome why) const override;

 private:
  class sql602_hold : public egress_hold {
   public:
    /// The break datagram naming this session's egress address, to the UDP PORTBASE of the
    /// server the session is connected to: the same datagram the UDP door sends for it.
    break_result send_break() override;

    break_table::registration breaks;
    std::optional<config::ip_address> local;  ///< set once connected: what the server sees as the peer
    net::ip::address server;
    std::uint16_t portbase = 0;
    std::string backend;  ///< for the log
    std::chrono::steady_clock::time_point last_break{};
  };
  break_table* breaks_;
};

/// The 602SQL HTTP tunnel on a listener with `sql602_tunnel`: takes connections whose first
/// request is a tunnel POST.
class sql602_http_door : public http_door_extension {
 public:
  net::awaitable<bool> serve(tunnel::client_stream& client, const tunnel::request_head& first,
                             std::vector<std::uint8_t>& leftover, const session_context& ctx,
                             access_record& rec) const override;
};

}  // namespace edgerelay::proxy
