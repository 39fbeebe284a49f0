// The UDP side of a 602SQL door (docs/602sql.md): a listener's `udp_bind` socket.
//
// On a `forward` listener to a backend of kind sql602 (door - 1): discovery queries are relayed to
// the backend's UDP PORTBASE and the reply comes back naming the gateway's door; breaks are matched
// to the client's oldest live session to that backend and sent to PORTBASE naming that session's
// egress address. On a SOCKS listener (SOCKS port - 1): breaks of the stock Windows client, matched
// to its sessions through that listener. Everything else is dropped and counted.
//
// Every datagram the door acts on is first decided by the rules (its source, no user, the
// backend's name and UDP PORTBASE) and then takes a token from its source's bucket, so the door
// answers no source the rules deny and is no amplifier for a spoofed one.
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
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/model.hpp"
#include "config/policy.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/core/snapshot.hpp"
#include "sql602/runtime/break_table.hpp"

namespace edgerelay::proxy {

/// The backend's address (its host, resolved when it is a name); nullopt when it does not resolve.
net::awaitable<std::optional<net::ip::address>> backend_address(std::string host);

/// Sends a discovery query to `server`:`portbase` from a fresh socket and waits up to `limit` for
/// the server's reply (first byte 0x12, from the server's address). Never throws.
net::awaitable<std::optional<std::vector<std::uint8_t>>> query_server(net::ip::address server, std::uint16_t portbase,
                                                                      std::chrono::milliseconds limit);

/// Sends the break datagram naming `egress` (`02 <egress as LE u32> 00`) to `server`:`portbase`
/// from a fresh socket: the one path of every break the gateway forwards, whether a client sent
/// it to a UDP door or in-band on a tunnel. The server breaks the first session whose peer is
/// `egress`. Never blocks (one datagram on a non-blocking socket). Empty on success, else why not.
std::string send_break_datagram(const net::ip::address& server, std::uint16_t portbase,
                                const config::ip_address& egress);

/// Token buckets per source address, for a door's datagrams. Memory is bounded whatever the
/// sources: at most `max_sources` entries, an entry unseen for `idle_expiry` may be forgotten (its
/// bucket is full again by then, so forgetting it changes nothing), and while the table is full of
/// live entries every new source shares one overflow bucket. Thread: one (the control thread).
class source_rate_limit {
 public:
  using clock = std::chrono::steady_clock;
  struct settings {
    double per_second = 10;
    double burst = 20;
    std::size_t max_sources = 4096;
    clock::duration idle_expiry = std::chrono::seconds(10);
    clock::duration log_period = std::chrono::seconds(10);  ///< a source's drops are logged once per period
  };
  struct result {
    bool pass = false;
    bool overflow = false;        ///< the source was charged to the shared bucket (the table was full)
    std::uint64_t log_drops = 0;  ///< non-zero: log now, this many drops of the source since its last log
  };

  source_rate_limit() : source_rate_limit(settings{}) {}
  explicit source_rate_limit(settings s) : settings_(s) {}

  result take(const config::ip_address& source, clock::time_point now);
  std::size_t sources() const noexcept { return table_.size(); }
  const settings& limits() const noexcept { return settings_; }

 private:
  struct bucket {
    double tokens = 0;
    clock::time_point refilled{};
    clock::time_point logged{};
    std::uint64_t drops = 0;
    bool ever_logged = false;
  };
  struct address_hash {
    std::size_t operator()(const config::ip_address& a) const noexcept;
  };
  result charge(bucket& b, clock::time_point now) const;
  void forget_idle(clock::time_point now);

  settings settings_;
  std::unordered_map<config::ip_address, bucket, address_hash> table_;
  bucket overflow_;
  bool overflow_started_ = false;
  clock::time_point swept_{};
};

struct udp_door_counters {
  std::atomic<std::uint64_t> breaks_forwarded{0};
  std::atomic<std::uint64_t> breaks_dropped{0};  ///< no live session of that client, malformed, unbreakable
  std::atomic<std::uint64_t> discovery_answered{0};
  std::atomic<std::uint64_t> discovery_dropped{0};  ///< backend down or silent, not a sql602 door, too many
  std::atomic<std::uint64_t> other_dropped{0};
  std::atomic<std::uint64_t> denied{0};        ///< the rules do not let the source reach the backend's UDP PORTBASE
  std::atomic<std::uint64_t> rate_limited{0};  ///< over the source's bucket (source_rate_limit)
};

class sql602_udp_door {
 public:
  /// Binds `at`; `door` is the listener's bound TCP endpoint. Throws std::runtime_error naming the
  /// listener when it cannot bind. `current` is the server's snapshot member (control thread only).
  sql602_udp_door(net::io_context& control, std::string listener, const udp::endpoint& at, const tcp::endpoint& door,
                  const std::shared_ptr<const runtime_snapshot>& current, backend_runtime& backends);
  /// With a socket already bound (handed over by the running instance at a takeover); the door
  /// owns `adopted_fd` from now on, even when this throws.
  sql602_udp_door(net::io_context& control, std::string listener, int adopted_fd, const tcp::endpoint& door,
                  const std::shared_ptr<const runtime_snapshot>& current, backend_runtime& backends);
  sql602_udp_door(const sql602_udp_door&) = delete;
  sql602_udp_door& operator=(const sql602_udp_door&) = delete;

  udp::endpoint local_endpoint() const { return local_; }
  const udp_door_counters& counters() const noexcept { return counters_; }
  void start();
  /// Control thread: closes the socket; pending discovery relays end within their 3 s limit.
  void stop();
  /// Control thread: a dup of the socket for a takeover (the caller owns it); -1 when closed.
  int lend_socket();
  /// Control thread: stops receiving and lets go of the socket without closing it for the new
  /// process that reads it too (takeover).
  void hand_over();
  /// Control thread, after a reload kept this socket: it serves `listener` (the name may be new),
  /// whose TCP door is now `door`.
  void follow(std::string listener, const tcp::endpoint& door);
  /// Control thread: stopped and nothing of it runs any more, so it may be destroyed.
  bool finished() const noexcept { return stopped_ && !receiving_ && discovery_in_flight_ == 0; }

 private:
  /// What both public constructors come to, once they have their socket.
  sql602_udp_door(udp::socket socket, std::string&& listener, const tcp::endpoint& door,
                  const std::shared_ptr<const runtime_snapshot>& current, backend_runtime& backends);
  net::awaitable<void> receive_loop();
  net::awaitable<void> forward_break(std::vector<std::uint8_t> datagram, udp::endpoint from);
  void start_discovery(std::vector<std::uint8_t> datagram, const udp::endpoint& from);
  /// `b` points into `snapshot`, which the relay holds for that reason.
  net::awaitable<void> relay_discovery(std::vector<std::uint8_t> datagram, udp::endpoint reply_to,
                                       std::shared_ptr<const runtime_snapshot> snapshot,
                                       const config::backend_config& b, config::verdict verdict);
  /// The rules by the backend's name, then the source's bucket, for a datagram from `from` bound
  /// for `b`'s UDP PORTBASE. False: dropped (counted and logged here). Else `verdict` is allow, or
  /// needs_address for server_for() to decide on the backend's address.
  bool admit(const runtime_snapshot& snapshot, const config::backend_config& b, const udp::endpoint& from,
             std::string_view what, config::verdict& verdict);
  /// The backend's address for an admitted datagram, decided on when `verdict` needs it; nullopt:
  /// it does not resolve (counted in `dropped`) or the rules deny that address (counted as denied).
  net::awaitable<std::optional<net::ip::address>> server_for(const runtime_snapshot& snapshot,
                                                             const config::backend_config& b, const udp::endpoint& from,
                                                             config::verdict verdict, std::string_view what,
                                                             std::atomic<std::uint64_t>& dropped);
  /// The source's bucket alone (admit() asks it after the rules). False: dropped, counted, logged.
  bool within_rate(const udp::endpoint& from);
  void note_denied(const udp::endpoint& from, const config::backend_config& b, std::string_view what,
                   const config::decision& d);

  std::string listener_;
  udp::socket socket_;
  udp::endpoint local_;
  std::uint16_t door_port_ = 0;
  const std::shared_ptr<const runtime_snapshot>* current_;
  backend_runtime* backends_;
  udp_door_counters counters_;
  source_rate_limit limit_;
  unsigned discovery_in_flight_ = 0;
  bool receiving_ = false;
  bool stopped_ = false;
};

}  // namespace edgerelay::proxy
