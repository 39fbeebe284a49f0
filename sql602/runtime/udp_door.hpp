// The UDP side of a 602SQL door (docs/602sql.md): a listener's `udp_bind` socket.
//
// On a `forward` listener to a backend of kind sql602 (door - 1): discovery queries are relayed to
// the backend's UDP PORTBASE and the reply comes back naming the gateway's door; breaks are matched
// to the client's oldest live session to that backend and sent to PORTBASE naming that session's
// egress address. On a SOCKS listener (SOCKS port - 1): breaks of the stock Windows client, matched
// to its sessions through that listener. Everything else is dropped and counted.
//
// Runs on the control io_context (a low-volume path); reads the server's current snapshot there.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "proxy/core/asio.hpp"
#include "sql602/runtime/break_table.hpp"
#include "proxy/core/snapshot.hpp"

namespace edgerelay::proxy {

/// The backend's address (its host, resolved when it is a name); nullopt when it does not resolve.
net::awaitable<std::optional<net::ip::address>> backend_address(std::string host);

/// Sends a discovery query to `server`:`portbase` from a fresh socket and waits up to `limit` for
/// the server's reply (first byte 0x12, from the server's address). Never throws.
net::awaitable<std::optional<std::vector<std::uint8_t>>> query_server(net::ip::address server, std::uint16_t portbase,
                                                                      std::chrono::milliseconds limit);

struct udp_door_counters {
  std::atomic<std::uint64_t> breaks_forwarded{0};
  std::atomic<std::uint64_t> breaks_dropped{0};  ///< no live session of that client, malformed, unbreakable
  std::atomic<std::uint64_t> discovery_answered{0};
  std::atomic<std::uint64_t> discovery_dropped{0};  ///< backend down or silent, not a sql602 door, too many
  std::atomic<std::uint64_t> other_dropped{0};
};

class sql602_udp_door {
 public:
  /// Binds `at`; `door` is the listener's bound TCP endpoint. Throws std::runtime_error naming the
  /// listener when it cannot bind. `current` is the server's snapshot member (control thread only).
  sql602_udp_door(net::io_context& control, std::string listener, const udp::endpoint& at, const tcp::endpoint& door,
                  const std::shared_ptr<const runtime_snapshot>& current, backend_runtime& backends);
  sql602_udp_door(const sql602_udp_door&) = delete;
  sql602_udp_door& operator=(const sql602_udp_door&) = delete;

  udp::endpoint local_endpoint() const { return local_; }
  const udp_door_counters& counters() const noexcept { return counters_; }
  void start();
  /// Control thread: closes the socket; pending discovery relays end within their 3 s limit.
  void stop();
  /// Control thread, after a reload kept this socket: it serves `listener` (the name may be new),
  /// whose TCP door is now `door`.
  void follow(std::string listener, const tcp::endpoint& door);
  /// Control thread: stopped and nothing of it runs any more, so it may be destroyed.
  bool finished() const noexcept { return stopped_ && !receiving_ && discovery_in_flight_ == 0; }

 private:
  net::awaitable<void> receive_loop();
  net::awaitable<void> forward_break(std::vector<std::uint8_t> datagram, udp::endpoint from);
  net::awaitable<void> relay_discovery(std::vector<std::uint8_t> datagram, udp::endpoint from);

  std::string listener_;
  udp::socket socket_;
  udp::endpoint local_;
  std::uint16_t door_port_ = 0;
  const std::shared_ptr<const runtime_snapshot>* current_;
  backend_runtime* backends_;
  udp_door_counters counters_;
  unsigned discovery_in_flight_ = 0;
  bool receiving_ = false;
  bool stopped_ = false;
};

}  // namespace edgerelay::proxy
