// The UDP side of a 602SQL door (see sql602_udp.hpp).
#include "sql602/runtime/udp_door.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include "config/address.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/observe/log.hpp"
#include "sql602/udp_codec.hpp"

namespace edgerelay::proxy {
namespace {

/// How long the door waits for the server's discovery reply (docs/602sql.md suggests 3 s).
constexpr std::chrono::milliseconds discovery_wait{3000};
/// Discovery relays waiting for a reply at once, per door; more queries are dropped.
constexpr unsigned max_discovery_in_flight = 32;
/// A reply goes out only when it is at most this many times its query's size, so a spoofed query
/// cannot buy much more traffic towards its victim than it cost. The stock client's shortest query
/// (`01 "5002" 00`, 6 bytes) still gets the longest reply (a 31-byte name and a 5-digit PORTBASE,
/// 39 bytes).
constexpr std::size_t max_reply_factor = 8;

const config::backend_config* backend_named(const config::config& cfg, std::string_view name) {
  for (const auto& b : cfg.backends) {
    if (config::host_equals(b.name, name)) return &b;
  }
  return nullptr;
}

/// The first datagram from `server` that starts with 0x12, within the current phase of `dl`.
net::awaitable<std::optional<std::vector<std::uint8_t>>> receive_reply(udp::socket& s, net::ip::address server,
                                                                       phase_deadline& dl) {
  std::array<std::uint8_t, tunnel::sql602::max_datagram> buf;
  // Bounded in count as well as time: a peer spraying other datagrams cannot keep this busy.
  for (int i = 0; i < 64; ++i) {
    udp::endpoint from;
    auto [ec, n] = co_await s.async_receive_from(net::buffer(buf), from, dl.token());
    if (ec) break;
    if (from.address() == server && n > 0 && buf[0] == tunnel::sql602::sqp_server_name) {
      co_return std::vector<std::uint8_t>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
  }
  co_return std::nullopt;
}

}  // namespace

std::string send_break_datagram(const net::ip::address& server, std::uint16_t portbase,
                                const config::ip_address& egress) {
  if (egress.v6) {
    return "the session's egress address is IPv6";
  }
  const tunnel::sql602::ipv4_bytes named{egress.bytes[0], egress.bytes[1], egress.bytes[2], egress.bytes[3]};
  const auto datagram = tunnel::sql602::encode_break(named);
  if (!datagram) {
    return "the session's egress address ends in 128 or more";
  }
  const udp::endpoint to(server, portbase);
  // A plain descriptor: one datagram needs no I/O object, and callers on any thread (the control
  // thread's UDP door, a session's worker) can send without an executor of their own.
  const int fd = ::socket(server.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return std::string("no UDP socket: ") + std::strerror(errno);
  }
  const ssize_t sent =
      ::sendto(fd, datagram->data(), datagram->size(), 0, to.data(), static_cast<socklen_t>(to.size()));
  const int err = errno;
  ::close(fd);
  if (sent < 0) {
    return std::string("sending to ") + server.to_string() + ":" + std::to_string(portbase) + ": " + std::strerror(err);
  }
  return {};
}

std::size_t source_rate_limit::address_hash::operator()(const config::ip_address& a) const noexcept {
  std::size_t h = a.v6 ? 1469598103934665603ULL : 1099511628211ULL;
  for (const std::uint8_t byte : a.bytes) {
    h = (h ^ byte) * 1099511628211ULL;  // FNV-1a
  }
  return h;
}

source_rate_limit::result source_rate_limit::charge(bucket& b, clock::time_point now) const {
  const std::chrono::duration<double> elapsed = now - b.refilled;
  if (elapsed.count() > 0) {
    b.tokens = std::min(settings_.burst, b.tokens + elapsed.count() * settings_.per_second);
    b.refilled = now;
  }
  result r;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    r.pass = true;
    return r;
  }
  ++b.drops;
  if (!b.ever_logged || now - b.logged >= settings_.log_period) {
    r.log_drops = b.drops;
    b.drops = 0;
    b.logged = now;
    b.ever_logged = true;
  }
  return r;
}

void source_rate_limit::forget_idle(clock::time_point now) {
  // At most once a second: under a flood of new sources a sweep per datagram would cost the whole
  // table each time.
  if (swept_ != clock::time_point{} && now - swept_ < std::chrono::seconds(1)) {
    return;
  }
  swept_ = now;
  std::erase_if(table_, [&](const auto& entry) { return now - entry.second.refilled >= settings_.idle_expiry; });
}

source_rate_limit::result source_rate_limit::take(const config::ip_address& source, clock::time_point now) {
  const config::ip_address key = config::fold_v4_mapped(source);
  auto it = table_.find(key);
  if (it == table_.end()) {
    if (table_.size() >= settings_.max_sources) {
      forget_idle(now);
    }
    if (table_.size() >= settings_.max_sources) {
      if (!overflow_started_) {
        overflow_ = bucket{settings_.burst, now};
        overflow_started_ = true;
      }
      result r = charge(overflow_, now);
      r.overflow = true;
      return r;
    }
    it = table_.emplace(key, bucket{settings_.burst, now}).first;
  }
  return charge(it->second, now);
}

net::awaitable<std::optional<net::ip::address>> backend_address(std::string host) {
  error_code ec;
  const auto literal = net::ip::make_address(host, ec);
  if (!ec) co_return literal;
  udp::resolver resolver(co_await net::this_coro::executor);
  auto [rec, results] = co_await resolver.async_resolve(host, "0", use_ec);
  if (rec || results.empty()) co_return std::nullopt;
  co_return results.begin()->endpoint().address();
}

net::awaitable<std::optional<std::vector<std::uint8_t>>> query_server(net::ip::address server, std::uint16_t portbase,
                                                                      std::chrono::milliseconds limit) {
  udp::socket s(co_await net::this_coro::executor);
  error_code ec;
  const udp protocol = server.is_v4() ? udp::v4() : udp::v6();
  s.open(protocol, ec);
  if (!ec) s.bind(udp::endpoint(protocol, 0), ec);
  if (ec) co_return std::nullopt;
  const auto query = tunnel::sql602::encode_discovery_query(s.local_endpoint(ec).port());
  phase_deadline dl(s.get_executor());
  dl.start(limit);
  std::optional<std::vector<std::uint8_t>> reply;
  auto [sec, sent] = co_await s.async_send_to(net::buffer(query), udp::endpoint(server, portbase), dl.token());
  if (!sec) {
    reply = co_await receive_reply(s, server, dl);
  }
  co_await dl.settle();  // no timer handler may outlive `dl`
  co_return reply;
}

namespace {

udp::socket bound_udp(net::io_context& control, const std::string& listener, const udp::endpoint& at) {
  udp::socket socket(control);
  error_code ec;
  socket.open(at.protocol(), ec);
  if (!ec) socket.bind(at, ec);
  if (ec) {
    throw std::runtime_error(concat("listener '", listener, "': cannot bind udp_bind ", at.address().to_string(), ':',
                                    at.port(), ": ", ec.message()));
  }
  return socket;
}

udp::socket adopted_udp(net::io_context& control, const std::string& listener, int adopted_fd) {
  udp::socket socket(control);
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  error_code ec;
  if (::getsockname(adopted_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      (address.ss_family != AF_INET && address.ss_family != AF_INET6)) {
    ec = net::error::address_family_not_supported;
  }
  if (!ec) socket.assign(address.ss_family == AF_INET ? udp::v4() : udp::v6(), adopted_fd, ec);
  if (ec) {
    ::close(adopted_fd);
    throw std::runtime_error(concat("listener '", listener, "': cannot take the udp_bind socket over: ", ec.message()));
  }
  return socket;
}

}  // namespace

sql602_udp_door::sql602_udp_door(net::io_context& control, std::string listener, const udp::endpoint& at,
                                 const tcp::endpoint& door, const std::shared_ptr<const runtime_snapshot>& current,
                                 backend_runtime& backends)
    : sql602_udp_door(bound_udp(control, listener, at), std::move(listener), door, current, backends) {}

sql602_udp_door::sql602_udp_door(net::io_context& control, std::string listener, int adopted_fd,
                                 const tcp::endpoint& door, const std::shared_ptr<const runtime_snapshot>& current,
                                 backend_runtime& backends)
    : sql602_udp_door(adopted_udp(control, listener, adopted_fd), std::move(listener), door, current, backends) {}

sql602_udp_door::sql602_udp_door(udp::socket socket, std::string&& listener, const tcp::endpoint& door,
                                 const std::shared_ptr<const runtime_snapshot>& current, backend_runtime& backends)
    : listener_(std::move(listener)),
      socket_(std::move(socket)),
      local_(socket_.local_endpoint()),
      door_port_(door.port()),
      current_(&current),
      backends_(&backends) {}

int sql602_udp_door::lend_socket() {
  return socket_.is_open() ? ::fcntl(socket_.native_handle(), F_DUPFD_CLOEXEC, 0) : -1;
}

void sql602_udp_door::hand_over() {
  stopped_ = true;
  error_code ignored;
  // release(), not close(): the socket leaves this event loop's epoll set while the new process
  // keeps it open.
  const int fd = socket_.release(ignored);
  if (fd >= 0) ::close(fd);
}

void sql602_udp_door::start() {
  receiving_ = true;
  net::co_spawn(socket_.get_executor(), receive_loop(), [this, name = listener_](const std::exception_ptr& ep) {
    receiving_ = false;
    if (ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        log::error("udp", name, ": udp_bind loop failed: ", e.what());
      }
    }
  });
}

void sql602_udp_door::follow(std::string listener, const tcp::endpoint& door) {
  listener_ = std::move(listener);
  door_port_ = door.port();
}

void sql602_udp_door::stop() {
  stopped_ = true;
  error_code ignored;
  socket_.close(ignored);
}

net::awaitable<void> sql602_udp_door::receive_loop() {
  std::array<std::uint8_t, 2048> buf;
  for (;;) {
    udp::endpoint from;
    auto [ec, n] = co_await socket_.async_receive_from(net::buffer(buf), from, use_ec);
    if (ec) {
      if (stopped_ || ec == net::error::operation_aborted || !socket_.is_open()) co_return;
      continue;  // e.g. an ICMP error reported for an earlier send
    }
    std::vector<std::uint8_t> datagram(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (datagram.size() > tunnel::sql602::max_datagram) {
      counters_.other_dropped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    switch (tunnel::sql602::datagram_kind(datagram)) {
      case tunnel::sql602::sqp_break: co_await forward_break(std::move(datagram), from); break;
      case tunnel::sql602::sqp_for_server: start_discovery(std::move(datagram), from); break;
      default:
        counters_.other_dropped.fetch_add(1, std::memory_order_relaxed);
        log::debug("udp", listener_, ": dropped a datagram of kind ",
                   static_cast<unsigned>(datagram.empty() ? 0 : datagram[0]), " from ", from.address().to_string());
        break;
    }
  }
}

bool sql602_udp_door::admit(const runtime_snapshot& snapshot, const config::backend_config& b,
                            const udp::endpoint& from, std::string_view what, config::verdict& verdict) {
  const config::ip_address source = to_config_address(from.address());
  const config::request req{source, {}, listener_, b.name, std::nullopt, b.portbase, config::transport::udp};
  const config::decision d = snapshot.pol.decide(req);
  if (d.result == config::verdict::deny) {
    note_denied(from, b, what, d);
    return false;
  }
  verdict = d.result;
  return within_rate(from);
}

bool sql602_udp_door::within_rate(const udp::endpoint& from) {
  const config::ip_address source = to_config_address(from.address());
  const auto taken = limit_.take(source, source_rate_limit::clock::now());
  if (taken.pass) {
    return true;
  }
  counters_.rate_limited.fetch_add(1, std::memory_order_relaxed);
  if (taken.log_drops != 0) {
    const auto& lim = limit_.limits();
    const auto period = std::chrono::duration_cast<std::chrono::seconds>(lim.log_period).count();
    if (taken.overflow) {
      log::warn("udp", listener_, ": the per-source table is full (", lim.max_sources, " sources): ", taken.log_drops,
                " datagram(s) from new sources over their shared ", static_cast<unsigned>(lim.per_second), "/s (burst ",
                static_cast<unsigned>(lim.burst), ") dropped, the latest from ", from.address().to_string(),
                "; reported at most once every ", period, " s");
    } else {
      log::warn("udp", listener_, ": source ", from.address().to_string(), ": ", taken.log_drops, " datagram(s) over ",
                static_cast<unsigned>(lim.per_second), "/s (burst ", static_cast<unsigned>(lim.burst),
                ") dropped; reported at most once every ", period, " s per source");
    }
  }
  return false;
}

void sql602_udp_door::note_denied(const udp::endpoint& from, const config::backend_config& b, std::string_view what,
                                  const config::decision& d) {
  counters_.denied.fetch_add(1, std::memory_order_relaxed);
  log::debug("udp", listener_, ": ", what, " from ", from.address().to_string(), " to backend '", b.name, "' udp ",
             b.portbase, " denied by rule '", d.rule_name, "'");
}

net::awaitable<std::optional<net::ip::address>> sql602_udp_door::server_for(
    const runtime_snapshot& snapshot, const config::backend_config& b, const udp::endpoint& from,
    config::verdict verdict, std::string_view what, std::atomic<std::uint64_t>& dropped) {
  const auto server = co_await backend_address(b.host);
  if (!server) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    log::debug("udp", listener_, ": ", what, " from ", from.address().to_string(), " dropped: backend host '", b.host,
               "' does not resolve");
    co_return std::nullopt;
  }
  if (verdict == config::verdict::needs_address) {
    const config::ip_address source = to_config_address(from.address());
    const config::ip_address dialled = to_config_address(*server);
    const config::request req{source, {}, listener_, b.name, dialled, b.portbase, config::transport::udp};
    const config::decision d = snapshot.pol.decide(req);
    if (d.result != config::verdict::allow) {
      note_denied(from, b, what, d);
      co_return std::nullopt;
    }
  }
  co_return server;
}

net::awaitable<void> sql602_udp_door::forward_break(std::vector<std::uint8_t> datagram, udp::endpoint from) {
  const auto drop = [this, &from](std::string_view why) {
    counters_.breaks_dropped.fetch_add(1, std::memory_order_relaxed);
    log::debug("udp", listener_, ": break from ", from.address().to_string(), " dropped: ", why);
  };
  const auto snapshot = *current_;
  const config::listener_config* l = snapshot->find_listener(listener_);
  const auto named = tunnel::sql602::parse_break(datagram);
  if (l == nullptr || !named) {
    drop("malformed");
    co_return;
  }
  config::ip_address named_address;
  std::copy(named->begin(), named->end(), named_address.bytes.begin());
  // A forward door serves one backend; a SOCKS listener's breaks go to whichever backend the
  // client's session through that listener reached.
  const auto session = backends_->breaks.find(to_config_address(from.address()), named_address, l->forward,
                                              l->forward.empty() ? std::string_view(listener_) : std::string_view());
  if (!session) {
    drop("no live session of that client");
    co_return;
  }
  if (session->inband != nullptr) {
    // edgerelay client: the break crosses the session's own tunnel, and the gateway sends it from
    // the session's egress address. The session was admitted already and the break reaches no
    // one else, so only the source's bucket is asked.
    if (!within_rate(from)) {
      co_return;
    }
    net::post(session->inband_at,
              [table = &backends_->breaks, order = session->order] { (void)table->send_inband(order); });
    counters_.breaks_forwarded.fetch_add(1, std::memory_order_relaxed);
    log::debug("udp", listener_, ": break from ", from.address().to_string(), " sent in-band on its session");
    co_return;
  }
  if (session->egress.v6) {
    drop("the session's egress address is IPv6");
    co_return;
  }
  const tunnel::sql602::ipv4_bytes egress{session->egress.bytes[0], session->egress.bytes[1], session->egress.bytes[2],
                                          session->egress.bytes[3]};
  const auto rewritten = tunnel::sql602::encode_break(egress);
  const config::backend_config* b = backend_named(snapshot->cfg, session->backend);
  if (!rewritten || b == nullptr) {
    drop(rewritten ? "backend gone" : "the session's egress address ends in 128 or more");
    co_return;
  }
  // The session was decided for the backend's TCP port, perhaps under older rules; the break is
  // bound for its UDP port under the current ones.
  config::verdict verdict = config::verdict::deny;
  if (!admit(*snapshot, *b, from, "break", verdict)) {
    co_return;
  }
  const auto server = co_await server_for(*snapshot, *b, from, verdict, "break", counters_.breaks_dropped);
  if (!server) {
    co_return;
  }
  const std::string failed = send_break_datagram(*server, b->portbase, session->egress);
  if (!failed.empty()) {
    drop(failed);
    co_return;
  }
  counters_.breaks_forwarded.fetch_add(1, std::memory_order_relaxed);
  log::debug("udp", listener_, ": break from ", from.address().to_string(), " sent to backend '", b->name,
             "' for the session from ", config::to_string(session->egress));
}

void sql602_udp_door::start_discovery(std::vector<std::uint8_t> datagram, const udp::endpoint& from) {
  auto snapshot = *current_;
  const config::listener_config* l = snapshot->find_listener(listener_);
  const config::backend_config* b = l == nullptr ? nullptr : backend_named(snapshot->cfg, l->forward);
  const auto query = tunnel::sql602::parse_discovery_query(datagram);
  if (b == nullptr || b->kind != config::backend_kind::sql602 || !query || backends_->health.is_down(b->name)) {
    // Not a 602SQL door, or the server is down: silence, as the server itself would give.
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Decided here, in arrival order and before a relay exists, so a flood costs no coroutine frames.
  config::verdict verdict = config::verdict::deny;
  if (!admit(*snapshot, *b, from, "discovery query", verdict)) {
    return;
  }
  if (discovery_in_flight_ >= max_discovery_in_flight) {
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ++discovery_in_flight_;
  net::co_spawn(socket_.get_executor(),
                relay_discovery(std::move(datagram), udp::endpoint(from.address(), query->reply_port),
                                std::move(snapshot), *b, verdict),
                [this](const std::exception_ptr&) { --discovery_in_flight_; });
}

net::awaitable<void> sql602_udp_door::relay_discovery(std::vector<std::uint8_t> datagram, udp::endpoint reply_to,
                                                      std::shared_ptr<const runtime_snapshot> snapshot,
                                                      const config::backend_config& b, config::verdict verdict) {
  const auto server =
      co_await server_for(*snapshot, b, reply_to, verdict, "discovery query", counters_.discovery_dropped);
  if (!server) {
    co_return;
  }
  const auto reply = co_await query_server(*server, b.portbase, discovery_wait);
  // The client connects to PORTBASE + 1 of the reply's source: make that the gateway's door.
  const auto rewritten =
      reply ? tunnel::sql602::rewrite_discovery_reply(*reply, static_cast<std::uint16_t>(door_port_ - 1))
            : std::nullopt;
  if (!rewritten || stopped_) {
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  if (rewritten->size() > max_reply_factor * datagram.size()) {
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    log::debug("udp", listener_, ": discovery reply of ", rewritten->size(), " bytes for a query of ", datagram.size(),
               " bytes from ", reply_to.address().to_string(), " dropped: over ", max_reply_factor,
               " times the query's size");
    co_return;
  }
  auto [ec, sent] = co_await socket_.async_send_to(net::buffer(*rewritten), reply_to, use_ec);
  if (ec) {
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  counters_.discovery_answered.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace edgerelay::proxy
