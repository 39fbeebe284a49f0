// HTTP-polling sessions (docs/tunnel-protocol.md, "HTTP polling"): the process-wide table that
// finds a session by its id from any worker, and one session's state: the bytes of both
// directions between the requests that carry them and the relay that reads and writes them.
//
// A session lives on the worker that accepted its open request: its state is touched there only.
// A request that lands on another worker (SO_REUSEPORT spreads connections) looks the session up
// in the table (a mutex, held for the lookup only) and runs its part on the owner's executor.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/core/asio.hpp"
#include "proxy/inbound/door_leg.hpp"
#include "tunnel/polling_codec.hpp"

namespace edgerelay::proxy {

/// Coroutines waiting for a change of one piece of a session's state; notify() wakes them all to
/// look again. Each waiter has its own timer in its own frame, so the list holds no I/O object.
class wake_list {
 public:
  /// Waits until notify() or `until`.
  net::awaitable<void> wait(std::chrono::steady_clock::time_point until);
  void notify() noexcept;

 private:
  std::vector<net::steady_timer*> waiting_;
};

/// What a polling request gets: a complete response, and whether its connection stays open.
struct poll_reply {
  std::string bytes;
  bool keep_alive = true;
};

class polling_sessions;

/// One polling session's state, on its owner's executor only. Shared by the table (to find it),
/// the session's client leg (the relay's side) and the requests running on it.
class polling_session : public std::enable_shared_from_this<polling_session> {
 public:
  using clock = std::chrono::steady_clock;
  /// Downstream bytes the leg may write ahead of the chunks the client fetched.
  static constexpr std::size_t out_limit = 4 * tunnel::poll_max_body;

  /// `idle`: no request for this long expires the session; `hold`: how long a request waits for
  /// bytes (down) or for room (up) before it is answered anyway.
  polling_session(net::any_io_executor owner, polling_sessions& table, std::chrono::milliseconds idle,
                  std::chrono::milliseconds hold, std::string peer);

  /// Registered as `id`: starts the idle watch.
  void start(std::string id);
  const std::string& id() const noexcept { return id_; }

  // The requests (docs/tunnel-protocol.md).
  net::awaitable<poll_reply> up(std::uint64_t seq, std::string body, tunnel::poll_control control);
  net::awaitable<poll_reply> down(std::uint64_t seq);
  poll_reply close_by_client();

  // The client leg's side (message_leg semantics).
  net::awaitable<std::pair<error_code, std::size_t>> leg_read(net::mutable_buffer into, net::cancellation_slot slot);
  net::awaitable<std::pair<error_code, std::size_t>> leg_write(net::const_buffer bytes, net::cancellation_slot slot);
  void leg_shutdown_send() noexcept;
  void leg_cancel() noexcept;
  /// The pipeline is done with the session. After a clean end (fin both ways) the id stays
  /// answerable until the idle expiry, so a lost last response can be fetched again.
  void leg_closed() noexcept;
  /// Where the client's break controls go (door_leg::carry_breaks).
  void carry_breaks(backend_hold* hold) noexcept { breaks_.attach(hold); }

  bool ended() const noexcept { return aborted_ || finished_; }

 private:
  struct chunk {
    std::string bytes;
    bool fin = false;
  };
  struct in_flight;

  /// Ends the session: the leg's operations fail with `why`, waiting requests are answered, the
  /// id is removed. Idempotent.
  void end(error_code why, std::string_view reason) noexcept;
  poll_reply conflict(std::string_view reason);
  poll_reply gone() const;
  poll_reply chunk_reply(std::uint64_t seq, const chunk& c) const;
  poll_reply ack(std::uint64_t seq) const;
  net::awaitable<void> watch_idle(std::shared_ptr<polling_session> self);
  void touch() noexcept { last_request_ = clock::now(); }

  net::any_io_executor owner_;
  polling_sessions& table_;
  std::chrono::milliseconds idle_;
  std::chrono::milliseconds hold_;
  std::string peer_;  ///< for the operator log
  std::string id_;

  // Upstream: client -> gateway.
  std::string in_;  ///< accepted bytes the relay has not read yet, from in_off_
  std::size_t in_off_ = 0;
  bool in_fin_ = false;  ///< the client's fin is accepted, after in_
  std::uint64_t up_next_ = 0;
  std::optional<std::array<std::uint8_t, 32>> last_up_;  ///< digest of seq up_next_ - 1
  wake_list in_ready_;                                   ///< the leg's read
  wake_list in_drained_;                                 ///< up requests waiting for room
  inband_breaks breaks_;                                 ///< the session's backend hold while the pipeline runs it
  std::uint64_t break_seq_ = 0;                          ///< 1 + the up seq whose break was forwarded (0: none yet)

  // Downstream: gateway -> client.
  std::string out_;       ///< bytes the leg wrote that no chunk holds yet
  bool out_fin_ = false;  ///< the leg half-closed
  bool fin_chunked_ = false;
  std::uint64_t down_next_ = 0;
  std::optional<chunk> kept_;    ///< chunk down_next_ - 1, kept until the client asks for down_next_
  std::uint64_t down_turn_ = 0;  ///< a newer down request supersedes a waiting one
  wake_list out_ready_;          ///< down requests
  wake_list out_room_;           ///< the leg's write

  // Life.
  bool aborted_ = false;   ///< aborted (client close, conflict, expiry, the pipeline's close)
  bool finished_ = false;  ///< the pipeline closed after a clean end; only retries are answered
  bool leg_cancelled_ = false;
  error_code end_why_;
  int requests_ = 0;
  clock::time_point last_request_ = clock::now();
  net::steady_timer* idle_timer_ = nullptr;  ///< in watch_idle's frame while it runs
};

/// The process-wide table of polling sessions, owned by the server: ids to sessions, each bound
/// to the user and the client address that opened it. Thread-safe.
class polling_sessions {
 public:
  struct found {
    std::shared_ptr<polling_session> session;
    net::any_io_executor owner;
  };

  /// Registers `s` under a fresh id (128 bits from the CSPRNG); nullopt when the CSPRNG failed.
  std::optional<std::string> add(std::shared_ptr<polling_session> s, net::any_io_executor owner, std::string user,
                                 net::ip::address client);
  /// The session `id` when it is bound to `user` and `client`; nullopt otherwise, whether it
  /// does not exist or belongs to someone else (a client cannot tell the two apart).
  std::optional<found> find(std::string_view id, std::string_view user, const net::ip::address& client) const;
  void remove(std::string_view id) noexcept;
  std::size_t size() const;

 private:
  struct entry {
    std::shared_ptr<polling_session> session;
    net::any_io_executor owner;
    std::string user;
    net::ip::address client;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, entry> by_id_;
};

}  // namespace edgerelay::proxy
