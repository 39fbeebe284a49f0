// Integration-test harness: an in-process gateway, loopback backends and blocking SOCKS clients.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "proxy/core/asio.hpp"
#include "config/load.hpp"
#include "proxy/runtime/server.hpp"

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

/// A TCP server on loopback with its own io_context thread: each accepted connection goes to
/// `on_connection`, whose awaitable runs detached on that thread. The call itself happens in the
/// accept loop, so a handler that is a plain function returning a coroutine can record the
/// connection in accept order before it is served. Stops and joins its thread on destruction;
/// declare it after the state its handler uses, so it stops before that state goes.
class loopback_server {
 public:
  using connection_handler = std::function<net::awaitable<void>(tcp::socket)>;
  /// Tag for the constructor that lets the owner listen and start() itself.
  struct deferred_t {};
  static constexpr deferred_t deferred{};

  /// Listens on `address`, an ephemeral port, and starts serving.
  explicit loopback_server(connection_handler on_connection, const std::string& address = "127.0.0.1");
  /// Neither listens nor starts: the owner opens, binds and listens acceptor() (a fixed or paired
  /// port), may spawn more work on context(), then calls start().
  loopback_server(connection_handler on_connection, deferred_t);
  ~loopback_server();
  loopback_server(const loopback_server&) = delete;
  loopback_server& operator=(const loopback_server&) = delete;

  /// Spawns the accept loop and runs the io_context on its own thread.
  void start();
  /// Stops the io_context and joins its thread; for owners whose other members use context().
  void stop();
  /// Closes the listening socket on the server thread (connects are then refused); waits for it.
  void close_acceptor();

  tcp::endpoint endpoint() const { return endpoint_; }
  std::uint16_t port() const { return endpoint_.port(); }
  net::io_context& context() { return ioc_; }
  tcp::acceptor& acceptor() { return acceptor_; }

 private:
  net::awaitable<void> accept_loop();
  connection_handler on_connection_;
  net::io_context ioc_{1};
  tcp::acceptor acceptor_;
  tcp::endpoint endpoint_;
  std::thread thread_;
};

/// What a backend does with each connection.
enum class backend_mode {
  echo,             ///< echo everything, half-close when the client does
  greet_then_echo,  ///< send "HELLO\n" first, then echo
  reply_after_eof,  ///< read to EOF, then send "got N bytes" and close (tests client->server half-close)
  close_then_read,  ///< send "BYE\n", shutdown(send), then read to EOF and record the byte count
};

/// A loopback TCP server on its own thread.
class backend {
 public:
  explicit backend(backend_mode mode, const std::string& address = "127.0.0.1");
  std::uint16_t port() const { return server_.port(); }
  tcp::endpoint endpoint() const { return server_.endpoint(); }
  /// Peer addresses of accepted connections, in order.
  std::vector<tcp::endpoint> peers() const;
  /// peers(), once at least `n` connections were accepted (waits up to 5 s).
  std::vector<tcp::endpoint> wait_peers(std::size_t n) const;
  /// Byte counts recorded by close_then_read connections.
  std::vector<std::size_t> received_after_close() const;

 private:
  net::awaitable<void> serve(tcp::socket s);
  backend_mode mode_;
  mutable std::mutex mu_;
  std::vector<tcp::endpoint> peers_;
  std::vector<std::size_t> received_;
  loopback_server server_;  // last: stops before the state above goes
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

/// YAML for a gateway with one SOCKS5/SOCKS4 listener `test` on 127.0.0.1:0: `first_rules` (rule
/// lines), then the rule `loopback` allowing 127.0.0.0/8 and ::1 to `to` (a YAML list), then
/// `limits: {<limits>}`, an error-level log and no access log.
std::string socks_loopback_config(const std::string& first_rules, const std::string& to, const std::string& limits);

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

/// A config file in a private temp folder, rewritten by the tests.
class config_file {
 public:
  explicit config_file(const std::string& text) {
    char dir_template[] = "/tmp/edgerelay-test-XXXXXX";
    dir_ = ::mkdtemp(dir_template);
    path_ = dir_ + "/edgerelay.yaml";
    write(text);
  }
  ~config_file() { std::filesystem::remove_all(dir_); }
  config_file(const config_file&) = delete;
  config_file& operator=(const config_file&) = delete;
  /// Replaces the file by rename, as editors and config managers do.
  void write(const std::string& text) {
    const std::string tmp = path_ + ".new";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace edgerelay::testing
