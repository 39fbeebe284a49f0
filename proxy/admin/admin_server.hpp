// The admin listener: /healthz, /readyz, /status and /metrics over plain HTTP/1.1, one request per
// connection, on the control thread's io_context (never on a worker).
#pragma once

#include <cstddef>
#include <chrono>
#include <list>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/address.hpp"
#include "config/model.hpp"
#include "proxy/admin/report.hpp"
#include "proxy/auth/auth_throttle.hpp"
#include "proxy/auth/verify_pool.hpp"
#include "proxy/core/asio.hpp"

namespace edgerelay::proxy::admin {

/// What the admin listener reports on; implemented by the server. Called on the control thread.
class status_source {
 public:
  virtual ~status_source() = default;
  /// Listeners bound, config loaded, and no shutdown under way.
  virtual bool ready() const = 0;
  /// Everything /status and /metrics show, the workers' counters summed. Never blocks a worker.
  virtual net::awaitable<scrape> take_scrape() = 0;
};

/// Who may ask: the allowed source networks and, when `users` is set, Basic credentials.
struct access_rules {
  std::vector<config::cidr> allow;
  std::vector<config::user_config> users;  ///< the admin users with their password hashes
  unsigned unknown_iterations = 0;         ///< what a name that is not an admin user is verified against
  config::auth_failures_config failures;   ///< limits.auth_failures: the same back-off as the proxy listeners

  /// From `cfg.admin` and `cfg.users` (already validated by the loader).
  static access_rules from(const config::config& cfg);
  bool allows(const net::ip::address& source) const noexcept;
};

/// Bounds of one admin connection.
inline constexpr std::size_t max_request_head = 8 * 1024;
inline constexpr std::chrono::milliseconds request_deadline{5000};
inline constexpr std::size_t max_connections = 16;

class admin_server {
 public:
  /// `throttle` is the process's one, shared with the proxy listeners: a source that fails logins
  /// on both is counted once.
  admin_server(net::io_context& control, status_source& source, verify_pool& verifier, auth_throttle& throttle);
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  /// Control thread: binds `at` and starts accepting. Throws std::runtime_error naming the address.
  tcp::endpoint open(const tcp::endpoint& at, access_rules rules);
  /// Control thread, after a reload: the next connections are checked against `rules`.
  void follow(access_rules rules) { rules_ = std::move(rules); }
  /// Control thread: stops accepting, closes the connections, and returns once none is left
  /// (or after `limit`).
  net::awaitable<void> stop(std::chrono::milliseconds limit);
  tcp::endpoint local_endpoint() const;

  /// Control thread: adopts an already listening socket (handed over by a running instance; it
  /// owns `fd` from now on) and starts accepting on it. Throws std::runtime_error when it cannot.
  tcp::endpoint adopt(int fd, access_rules rules);
  /// Control thread: no new connections, the socket left open for the new instance that took it
  /// over; the connections open go on.
  void stop_accepting();
  /// Control thread: the listening socket, for handing over to a new instance; -1 when closed.
  int native_listener() { return acceptor_.is_open() ? acceptor_.native_handle() : -1; }

 private:
  enum class login { ok, failed, throttled };
  void start_accepting();
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(tcp::socket socket);
  net::awaitable<std::string> respond(const std::string& method, const std::string& target,
                                      const std::optional<std::string>& authorization, const net::ip::address& peer);
  net::awaitable<login> authorized(const std::optional<std::string>& authorization, const net::ip::address& peer);

  net::io_context& control_;
  status_source& source_;
  verify_pool& verifier_;
  auth_throttle& throttle_;
  access_rules rules_;
  tcp::acceptor acceptor_;
  std::list<tcp::socket*> connections_;  ///< live ones, to close at stop()
  bool stopping_ = false;
};

}  // namespace edgerelay::proxy::admin
