// takeover: a new edgerelay process takes the listening sockets over from the running one
// (`edgerelay --config FILE --takeover`, docs/upgrade.md).
//
// The running instance listens on a unix stream socket (mode 0600). The new one connects and says
// hello; the running one answers with its listening sockets (SCM_RIGHTS) and what each is; the new
// one starts its workers on them and says ready; the running one stops accepting, says done, and
// drains. Until `ready` nothing changes for the running instance: a new process that fails or goes
// away leaves it serving as before.
//
// The wire format is a sequence of frames: u32 length (big-endian, of what follows), u8 type,
// payload. Strings are u16 length + bytes. The codec below is sans-I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/types.h>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy::takeover {

/// Bumped whenever a message changes: both sides must speak the same.
inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t max_frame = 1024 * 1024;
/// At most this many descriptors ride on one sendmsg (the kernel's SCM_MAX_FD is 253).
inline constexpr std::size_t max_fds_per_batch = 200;

enum class socket_kind : std::uint8_t { tcp = 1, udp = 2, admin = 3 };

/// new -> running: who asks.
struct hello {
  std::uint16_t version = protocol_version;
  std::string binary_version;
  friend bool operator==(const hello&, const hello&) = default;
};
/// running -> new: `count` descriptors ride on this frame's bytes.
struct fd_batch {
  std::uint16_t count = 0;
  friend bool operator==(const fd_batch&, const fd_batch&) = default;
};
/// One listening socket of the running instance; its descriptors are the next `fds` of those sent.
struct offered_socket {
  socket_kind kind = socket_kind::tcp;
  std::string listener;  ///< empty for the admin listener
  std::string address;   ///< the bound address
  std::uint16_t port = 0;
  std::uint16_t fds = 0;  ///< one per acceptor (a worker's SO_REUSEPORT one), one for udp and admin
  friend bool operator==(const offered_socket&, const offered_socket&) = default;
};
/// running -> new: every listening socket, after the fd_batch frames that carried them.
struct offer {
  std::string binary_version;
  std::vector<offered_socket> sockets;
  friend bool operator==(const offer&, const offer&) = default;
};
/// new -> running: the new workers accept on the sockets.
struct ready {
  friend bool operator==(const ready&, const ready&) = default;
};
/// running -> new: no longer accepting; draining `sessions`.
struct done {
  std::uint64_t sessions = 0;
  friend bool operator==(const done&, const done&) = default;
};
/// Either side: why it will not go on.
struct refusal {
  std::string reason;
  friend bool operator==(const refusal&, const refusal&) = default;
};

using message = std::variant<hello, fd_batch, offer, ready, done, refusal>;

std::vector<std::uint8_t> encode(const message& m);

/// Frames in, messages out. After an error every feed() returns it again.
class decoder {
 public:
  struct need_more {};
  struct error {
    std::string what;
  };
  using result = std::variant<need_more, message, error>;

  void feed(std::span<const std::uint8_t> bytes);
  /// The next whole message, need_more, or the first error.
  result next();

 private:
  std::vector<std::uint8_t> buffer_;
  std::size_t consumed_ = 0;
  std::optional<std::string> error_;
};

/// Thrown for every failed handover, with what went wrong and what to do.
class takeover_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// `configured` when set (takeover_socket:), else derived from the config file's real path:
/// $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else /run/edgerelay as root, else
/// $XDG_RUNTIME_DIR, else /tmp; named edgerelay-<hash of the path>.takeover.
std::string socket_path(const std::string& configured, const std::string& config_path);

/// An open descriptor, closed with the object unless released.
class owned_fd {
 public:
  owned_fd() = default;
  explicit owned_fd(int fd) noexcept : fd_(fd) {}
  owned_fd(owned_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  owned_fd& operator=(owned_fd&& o) noexcept;
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;
  ~owned_fd();
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

/// A socket received from the running instance.
struct inherited_socket {
  socket_kind kind = socket_kind::tcp;
  std::string listener;
  tcp::endpoint at;  ///< where it is bound (a udp one's address and port too)
  std::vector<owned_fd> fds;
  bool claimed = false;
};

/// What the new process got; the sockets its config does not claim close with it.
class inherited_sockets {
 public:
  inherited_sockets() = default;
  explicit inherited_sockets(std::vector<inherited_socket> sockets) : sockets_(std::move(sockets)) {}
  /// The unclaimed socket of `kind` a listener configured as `name` on `spec` carries on from: a
  /// fixed port is matched by address, whatever the name; port 0 by name and address only, since
  /// any free port was asked for. Empty when none.
  std::vector<owned_fd> claim(socket_kind kind, const std::string& name, const tcp::endpoint& spec);
  /// The bound address of what claim() would return, without claiming it.
  std::optional<tcp::endpoint> find(socket_kind kind, const std::string& name, const tcp::endpoint& spec) const;
  /// Listeners whose sockets nothing claimed (closed when this object goes).
  std::vector<std::string> unclaimed() const;
  bool empty() const noexcept { return sockets_.empty(); }

 private:
  inherited_socket* match(socket_kind kind, const std::string& name, const tcp::endpoint& spec);
  std::vector<inherited_socket> sockets_;
};

/// The new process's side, blocking with a deadline per step (it runs before and beside the
/// workers, on the main thread, never on a worker).
class client {
 public:
  /// Connects to the running instance at `path` and checks it runs as our user (or root).
  static client connect(const std::string& path, std::chrono::milliseconds limit);
  /// Says hello and receives every listening socket. Throws takeover_error on a refusal or a bad
  /// answer; nothing changed for the running instance then.
  inherited_sockets receive(const std::string& binary_version);
  /// Says ready and waits for done: the running instance no longer accepts. Returns the number of
  /// sessions it drains.
  std::uint64_t confirm_ready();

 private:
  client(owned_fd fd, std::string path, std::chrono::milliseconds limit)
      : fd_(std::move(fd)), path_(std::move(path)), limit_(limit) {}
  void send_all(const std::vector<std::uint8_t>& bytes);
  /// Reads until a whole message; descriptors that come with the bytes go to received_.
  message read_message();

  owned_fd fd_;
  std::string path_;
  std::chrono::milliseconds limit_;
  decoder decoder_;
  std::deque<owned_fd> received_;
};

/// What the running instance hands over, gathered by the server when a new process asks.
struct handover_sockets {
  std::string error;  ///< not empty: the takeover is refused with this
  std::vector<offered_socket> sockets;
  std::vector<owned_fd> fds;  ///< dups, in the order of `sockets`
};

/// The running instance's side, on the control thread's io_context. One new process at a time.
class listener {
 public:
  struct hooks {
    /// Gathers dups of every listening socket (asynchronously: the workers are asked).
    std::function<net::awaitable<handover_sockets>()> gather;
    /// The new process accepts on them: stop accepting and start the drain. Returns the number
    /// of sessions being drained.
    std::function<std::uint64_t()> hand_over;
    /// Empty when a takeover may go on, else why not (shutting down, ...).
    std::function<std::string()> refusal;
  };

  listener(net::io_context& control, std::string path, std::string binary_version, hooks h);
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
  ~listener();

  /// Binds the socket (mode 0600; a stale file left by a dead instance is replaced) and accepts.
  /// Throws takeover_error when another live instance listens there or the path cannot be used.
  void start();
  /// Stops accepting. `unlink`: remove the file, unless it is no longer ours (a new instance
  /// bound its own there).
  void stop(bool unlink);
  const std::string& path() const noexcept { return path_; }

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(net::local::stream_protocol::socket peer);

  net::io_context& control_;
  std::string path_;
  std::string binary_version_;
  hooks hooks_;
  net::local::stream_protocol::acceptor acceptor_;
  std::optional<std::pair<dev_t, ino_t>> bound_file_;
  bool handed_over_ = false;
};

}  // namespace edgerelay::proxy::takeover
