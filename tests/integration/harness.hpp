// Integration-test harness: an in-process gateway, loopback backends and blocking SOCKS clients.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "proxy/asio.hpp"
#include "config/load.hpp"
#include "proxy/server.hpp"

namespace edgerelay::testing {

using bytes = std::vector<std::uint8_t>;

/// edgerelay running in this process on loopback, built from YAML text. Stops on destruction.
class gateway {
 public:
  explicit gateway(const std::string& yaml, unsigned workers = 2);
  /// Loads `config_file`, which reload() and the file watch then read again.
  static std::unique_ptr<gateway> from_file(const std::string& config_file, unsigned workers = 2);
  ~gateway();
  tcp::endpoint endpoint(const std::string& listener = "test") const;
  proxy::server& server() { return *server_; }
  /// Waits (bounded) for run() to return after a shutdown; true if it did.
  bool wait_stopped(std::chrono::milliseconds limit);

 private:
  gateway(config::load_result loaded, const std::string& config_file, unsigned workers);
  std::unique_ptr<proxy::server> server_;
  std::thread control_;
  std::atomic<bool> stopped_{false};
};

/// What a backend does with each connection.
enum class backend_mode {
  echo,              ///< echo everything, half-close when the client does
  greet_then_echo,   ///< send "HELLO\n" first, then echo
  reply_after_eof,   ///< read to EOF, then send "got N bytes" and close (tests client->server half-close)
  close_then_read,   ///< send "BYE\n", shutdown(send), then read to EOF and record the byte count
};

/// A loopback TCP server on its own thread.
class backend {
 public:
  explicit backend(backend_mode mode, const std::string& address = "127.0.0.1");
  ~backend();
  std::uint16_t port() const { return port_; }
  tcp::endpoint endpoint() const { return endpoint_; }
  /// Peer addresses of accepted connections, in order.
  std::vector<tcp::endpoint> peers() const;
  /// peers(), once at least `n` connections were accepted (waits up to 5 s).
  std::vector<tcp::endpoint> wait_peers(std::size_t n) const;
  /// Byte counts recorded by close_then_read connections.
  std::vector<std::size_t> received_after_close() const;

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(tcp::socket s);
  backend_mode mode_;
  net::io_context ioc_{1};
  tcp::acceptor acceptor_;
  tcp::endpoint endpoint_;
  std::uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<tcp::endpoint> peers_;
  std::vector<std::size_t> received_;
  std::thread thread_;
};

/// A loopback listener whose accept queue is full, so the kernel drops further SYNs and a connect
/// to it hangs: the target for connect-timeout tests.
class blackhole {
 public:
  blackhole();
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

 private:
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<tcp::socket>> fillers_;
};

/// A loopback port nothing listens on (bound, then closed).
std::uint16_t closed_port();

/// Blocking client connection to the gateway with a receive timeout (tests never hang).
class client {
 public:
  explicit client(const tcp::endpoint& gateway, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void send(const bytes& b);
  void send(const std::string& s);
  /// Reads exactly n bytes; fails the test (throws) on EOF or timeout.
  bytes read_exact(std::size_t n);
  /// One recv of up to n bytes (0 on EOF); throws on timeout.
  bytes read_some(std::size_t n);
  /// Reads until EOF (bounded by the timeout), returns everything.
  bytes read_to_eof();
  /// True if the peer closed (EOF or reset) within `limit`.
  bool closed_within(std::chrono::milliseconds limit);
  void shutdown_send();
  tcp::socket& socket() { return socket_; }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
};

bytes socks5_greeting_noauth();
/// 05 01 00 ATYP ADDR PORT for an IP endpoint.
bytes socks5_connect_request(const tcp::endpoint& target);
bytes socks5_connect_domain(const std::string& host, std::uint16_t port);
bytes socks4_connect_request(const tcp::endpoint& target, const std::string& user = "");
bytes socks4a_connect_request(const std::string& host, std::uint16_t port, const std::string& user = "");

/// Performs the no-auth SOCKS5 greeting, then sends `request` (a CONNECT) and returns the full reply
/// (10 or 22 bytes). Works on any stream with send(bytes) and read_exact(n) (client, a TLS client).
template <class Stream>
bytes socks5_exchange(Stream& s, const bytes& request) {
  s.send(socks5_greeting_noauth());
  const bytes method = s.read_exact(2);
  if (method != bytes{0x05, 0x00}) throw std::runtime_error("SOCKS5 method refused");
  s.send(request);
  bytes head = s.read_exact(4);
  const std::size_t rest = head[3] == 0x04 ? 18 : 6;
  bytes tail = s.read_exact(rest);
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

/// Performs the no-auth SOCKS5 greeting and CONNECT; returns the full reply (10 or 22 bytes).
bytes socks5_connect(client& c, const tcp::endpoint& target);

bytes to_bytes(const std::string& s);
std::string to_text(const bytes& b);
/// Deterministic pseudo-random payload.
bytes pattern(std::size_t n, std::uint32_t seed);
bool in_private_netns();

}  // namespace edgerelay::testing
