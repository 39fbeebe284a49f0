// Admin HTTP: source check, bounded request head, optional Basic auth, one response, close.
#include "proxy/admin/admin_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <stdexcept>

#include <boost/asio/write.hpp>

#include "config/duration.hpp"
#include "config/password.hpp"
#include "proxy/admin/exposition.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/core/sleep.hpp"
#include "proxy/observe/log.hpp"
#include "tunnel/basic_auth.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "proxy/core/endpoint.hpp"

namespace edgerelay::proxy::admin {
namespace {

std::string_view reason(unsigned status) {
  switch (status) {
    case 200: return "OK";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return tunnel::reason_phrase(status);
  }
}

/// A whole response; every one closes the connection. HEAD gets the head alone.
std::string response(unsigned status, std::string_view content_type, std::string body, bool head_only,
                     std::string_view extra = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\n";
  out += extra;
  out += "Connection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

std::string text(unsigned status, bool head_only, std::string_view extra = {}) {
  return response(status, "text/plain; charset=utf-8",
                  std::to_string(status) + " " + std::string(reason(status)) + "\n", head_only, extra);
}

}  // namespace

access_rules access_rules::from(const config::config& cfg) {
  access_rules r;
  for (const auto& text : cfg.admin.allow) {
    if (auto net = config::parse_cidr(text)) r.allow.push_back(*net);
  }
  for (const auto& name : cfg.admin.users) {
    const auto it = std::find_if(cfg.users.begin(), cfg.users.end(), [&name](const auto& u) { return u.name == name; });
    if (it != cfg.users.end()) r.users.push_back(*it);
  }
  const unsigned n = r.users.empty() ? 0 : config::verification_iterations(r.users.front().password_hash);
  r.unknown_iterations = n == 0 ? config::default_pbkdf2_iterations : n;
  r.failures = cfg.limits.auth_failures;
  return r;
}

bool access_rules::allows(const net::ip::address& source) const noexcept {
  const config::ip_address a = to_config_address(source);
  return std::any_of(allow.begin(), allow.end(), [&a](const config::cidr& c) { return config::contains(c, a); });
}

admin_server::admin_server(net::io_context& control, status_source& source, verify_pool& verifier,
                           auth_throttle& throttle)
    : control_(control), source_(source), verifier_(verifier), throttle_(throttle), acceptor_(control) {}

tcp::endpoint admin_server::open(const tcp::endpoint& at, access_rules rules) {
  rules_ = std::move(rules);
  error_code ec;
  acceptor_.open(at.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    acceptor_.close(ignored);
    throw std::runtime_error(concat("admin: cannot listen on ", to_string(at), ": ", ec.message()));
  }
  start_accepting();
  return local_endpoint();
}

tcp::endpoint admin_server::adopt(int fd, access_rules rules) {
  rules_ = std::move(rules);
  error_code ec;
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ec.assign(errno, boost::system::system_category());
  } else if (address.ss_family != AF_INET && address.ss_family != AF_INET6) {
    ec = net::error::address_family_not_supported;
  }
  if (!ec) acceptor_.assign(address.ss_family == AF_INET ? tcp::v4() : tcp::v6(), fd, ec);
  if (ec) {
    ::close(fd);
    throw std::runtime_error(concat("admin: cannot take over the listening socket: ", ec.message()));
  }
  start_accepting();
  return local_endpoint();
}

void admin_server::stop_accepting() {
  // release(), not close(): the socket leaves the control loop's epoll set while the new process
  // keeps it open.
  error_code ignored;
  const int fd = acceptor_.release(ignored);
  if (fd >= 0) ::close(fd);
}

void admin_server::start_accepting() {
  net::co_spawn(control_, accept_loop(), [](const std::exception_ptr& ep) {
    if (!ep) return;
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      log::error("admin", "accept loop failed: ", e.what());
    }
  });
}

tcp::endpoint admin_server::local_endpoint() const {
  error_code ec;
  return acceptor_.local_endpoint(ec);
}

net::awaitable<void> admin_server::stop(std::chrono::milliseconds limit) {
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  for (auto* s : connections_) s->close(ignored);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!connections_.empty() && std::chrono::steady_clock::now() < deadline) {
    co_await sleep_for(std::chrono::milliseconds(10));
  }
}

net::awaitable<void> admin_server::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_ec);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) break;
      // Out of descriptors and the like: the connection waits in the backlog; do not spin.
      co_await sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    error_code peer_ec;
    const tcp::endpoint peer = socket.remote_endpoint(peer_ec);
    if (peer_ec || !rules_.allows(peer.address())) {
      // Closed unanswered: a scanner learns nothing, not even that this is HTTP.
      if (!peer_ec) log::debug("admin", "closed a connection from ", peer.address().to_string(), ": not in allow");
      continue;
    }
    if (connections_.size() >= max_connections) {
      log::warn("admin", "closed a connection: ", max_connections, " admin connections already open");
      continue;
    }
    net::co_spawn(control_, serve(std::move(socket)), [](const std::exception_ptr& ep) {
      if (!ep) return;
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        log::error("admin", "request failed: ", e.what());
      }
    });
  }
}

net::awaitable<void> admin_server::serve(tcp::socket socket) {
  const auto me = connections_.insert(connections_.end(), &socket);
  struct forget {
    std::list<tcp::socket*>& list;
    std::list<tcp::socket*>::iterator at;
    ~forget() { list.erase(at); }
  } forget_on_exit{connections_, me};

  co_await with_phase_deadline(socket.get_executor(), [&](phase_deadline& dl) -> net::awaitable<void> {
    dl.start(request_deadline);
    tunnel::request_head_reader reader(tunnel::request_reader_options{.header_limit = max_request_head});
    std::array<std::uint8_t, 2048> buf{};
    std::string reply;
    for (;;) {
      auto [ec, n] = co_await socket.async_read_some(net::buffer(buf), dl.token());
      if (ec) co_return;  // the client left, or the deadline passed before a whole head came
      auto result = reader.feed(std::span<const std::uint8_t>(buf.data(), n));
      if (std::holds_alternative<tunnel::need_more>(result)) continue;
      if (auto* bad = std::get_if<tunnel::http_error>(&result)) {
        reply.assign(bad->reply.begin(), bad->reply.end());
        break;
      }
      const auto& head = std::get<tunnel::parsed<tunnel::request_head>>(result).value;
      std::optional<std::string> authorization;
      if (auto a = head.field("Authorization")) authorization = std::string(*a);
      error_code peer_ec;
      const tcp::endpoint peer = socket.remote_endpoint(peer_ec);
      reply = co_await respond(head.method, head.path, authorization, peer.address());
      break;
    }
    if (!socket.is_open() || stopping_) co_return;
    auto [ec, written] = co_await net::async_write(socket, net::buffer(reply), dl.token());
    if (!ec) {
      error_code ignored;
      socket.shutdown(tcp::socket::shutdown_send, ignored);
    }
    dl.stop();
  });
  error_code ignored;
  socket.close(ignored);
}

net::awaitable<admin_server::login> admin_server::authorized(const std::optional<std::string>& authorization,
                                                             const net::ip::address& peer) {
  if (rules_.users.empty()) co_return login::ok;
  const config::ip_address source = to_config_address(peer);
  // A source in its back-off is answered without a verification: a guessing loop costs no CPU.
  if (throttle_.refuses(source, auth_throttle::clock::now())) co_return login::throttled;
  // No credentials at all is a browser's or a scraper's first try, not a guess: never counted.
  if (!authorization) co_return login::failed;
  const auto parsed = tunnel::parse_basic_auth(*authorization);
  const auto* creds = std::get_if<tunnel::credentials>(&parsed);
  std::string user = creds == nullptr ? std::string() : creds->user;
  bool matched = false;
  if (creds != nullptr) {
    const auto it = std::find_if(rules_.users.begin(), rules_.users.end(),
                                 [creds](const config::user_config& u) { return u.name == creds->user; });
    const bool known = it != rules_.users.end();
    // An unknown name costs a verification too, so the timing does not tell which names exist.
    password_check check(known ? it->password_hash : std::string(), creds->password,
                         known ? 0 : rules_.unknown_iterations);
    const auto [ec, ok] = co_await verifier_.async_verify(std::move(check), use_ec);
    if (ec) co_return login::failed;  // the pool is full: not the client's guess, so not counted
    matched = ok && known;
  }
  if (matched) co_return login::ok;
  const auto verdict = throttle_.failed(source, user, auth_throttle::clock::now(), rules_.failures);
  if (verdict.source_throttled) {
    log::warn("admin", "source ", config::to_string(throttle_key(source)), " throttled after ", verdict.source_failures,
              " failed logins in ", config::format_duration(rules_.failures.window), "; answering it 429 for ",
              config::format_duration(rules_.failures.backoff));
  }
  if (verdict.reply_delay.count() > 0) co_await sleep_for(verdict.reply_delay);
  co_return login::failed;
}

net::awaitable<std::string> admin_server::respond(const std::string& method, const std::string& target,
                                                  const std::optional<std::string>& authorization,
                                                  const net::ip::address& peer) {
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    co_return text(405, false, "Allow: GET, HEAD\r\n");
  }
  const login verdict = co_await authorized(authorization, peer);
  if (verdict == login::throttled) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(rules_.failures.backoff).count();
    co_return text(429, head_only, concat("Retry-After: ", std::max<long long>(seconds, 1), "\r\n"));
  }
  if (verdict == login::failed) {
    co_return text(401, head_only, "WWW-Authenticate: Basic realm=\"edgerelay admin\"\r\n");
  }
  const std::string path = target.substr(0, target.find('?'));
  if (path == "/healthz") {
    co_return response(200, "text/plain; charset=utf-8", "ok\n", head_only);
  }
  if (path == "/readyz") {
    if (source_.ready()) co_return response(200, "text/plain; charset=utf-8", "ready\n", head_only);
    co_return response(503, "text/plain; charset=utf-8", "not ready\n", head_only);
  }
  if (path == "/status") {
    const scrape s = co_await source_.take_scrape();
    co_return response(200, "application/json", render_status(s), head_only);
  }
  if (path == "/metrics") {
    const scrape s = co_await source_.take_scrape();
    co_return response(200, exposition_content_type, render_metrics(s, read_process_stats()), head_only);
  }
  co_return text(404, head_only);
}

}  // namespace edgerelay::proxy::admin
