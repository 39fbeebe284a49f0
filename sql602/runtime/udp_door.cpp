// The UDP side of a 602SQL door (see sql602_udp.hpp).
#include "sql602/runtime/udp_door.hpp"

#include <stdexcept>

#include <boost/asio/this_coro.hpp>

#include "config/address.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/core/deadline.hpp"
#include "proxy/observe/log.hpp"
#include "sql602/udp_codec.hpp"

namespace edgerelay::proxy {
namespace {

/// How long the door waits for the server's discovery reply (docs/602sql.md suggests 3 s).
constexpr std::chrono::milliseconds discovery_wait{3000};
/// Discovery relays waiting for a reply at once, per door; more queries are dropped.
constexpr unsigned max_discovery_in_flight = 32;

const config::backend_config* backend_named(const config::config& cfg, std::string_view name) {
  for (const auto& b : cfg.backends) {
    if (config::host_equals(b.name, name)) return &b;
  }
  return nullptr;
}

/// The first datagram from `server` that starts with 0x12. Never throws.
net::awaitable<std::optional<std::vector<std::uint8_t>>> receive_reply(udp::socket& s, net::ip::address server) {
  std::array<std::uint8_t, tunnel::sql602::max_datagram> buf;
  for (int i = 0; i < 64; ++i) {
    udp::endpoint from;
    auto [ec, n] = co_await s.async_receive_from(net::buffer(buf), from, use_ec);
    if (ec) break;
    if (from.address() == server && n > 0 && buf[0] == tunnel::sql602::sqp_server_name) {
      co_return std::vector<std::uint8_t>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
  }
  co_return std::nullopt;
}

}  // namespace

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
  auto [sec, sent] = co_await s.async_send_to(net::buffer(query), udp::endpoint(server, portbase), use_ec);
  if (sec) co_return std::nullopt;
  auto reply = co_await with_deadline(receive_reply(s, server), limit);
  if (!reply) co_return std::nullopt;
  co_return std::move(*reply);
}

sql602_udp_door::sql602_udp_door(net::io_context& control, std::string listener, const udp::endpoint& at,
                                 const tcp::endpoint& door, const std::shared_ptr<const runtime_snapshot>& current,
                                 backend_runtime& backends)
    : listener_(std::move(listener)),
      socket_(control),
      door_port_(door.port()),
      current_(&current),
      backends_(&backends) {
  error_code ec;
  socket_.open(at.protocol(), ec);
  if (!ec) socket_.bind(at, ec);
  if (ec) {
    throw std::runtime_error(concat("listener '", listener_, "': cannot bind udp_bind ", at.address().to_string(), ':',
                                    at.port(), ": ", ec.message()));
  }
  local_ = socket_.local_endpoint();
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
      case tunnel::sql602::sqp_for_server:
        if (discovery_in_flight_ >= max_discovery_in_flight) {
          counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
          break;
        }
        ++discovery_in_flight_;
        net::co_spawn(socket_.get_executor(), relay_discovery(std::move(datagram), from),
                      [this](const std::exception_ptr&) { --discovery_in_flight_; });
        break;
      default:
        counters_.other_dropped.fetch_add(1, std::memory_order_relaxed);
        log::debug("udp", listener_, ": dropped a datagram of kind ",
                   static_cast<unsigned>(datagram.empty() ? 0 : datagram[0]), " from ", from.address().to_string());
        break;
    }
  }
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
  const auto server = co_await backend_address(b->host);
  if (!server) {
    drop("backend host does not resolve");
    co_return;
  }
  udp::socket out(socket_.get_executor());
  error_code ec;
  out.open(server->is_v4() ? udp::v4() : udp::v6(), ec);
  if (!ec) {
    auto [sec, sent] = co_await out.async_send_to(net::buffer(*rewritten), udp::endpoint(*server, b->portbase), use_ec);
    ec = sec;
  }
  if (ec) {
    drop(ec.message());
    co_return;
  }
  counters_.breaks_forwarded.fetch_add(1, std::memory_order_relaxed);
  log::debug("udp", listener_, ": break from ", from.address().to_string(), " sent to backend '", b->name,
             "' for the session from ", config::to_string(session->egress));
}

net::awaitable<void> sql602_udp_door::relay_discovery(std::vector<std::uint8_t> datagram, udp::endpoint from) {
  const auto snapshot = *current_;
  const config::listener_config* l = snapshot->find_listener(listener_);
  const config::backend_config* b = l == nullptr ? nullptr : backend_named(snapshot->cfg, l->forward);
  const auto query = tunnel::sql602::parse_discovery_query(datagram);
  if (b == nullptr || b->kind != config::backend_kind::sql602 || !query || backends_->health.is_down(b->name)) {
    // Not a 602SQL door, or the server is down: silence, as the server itself would give.
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  const std::string host = b->host;
  const std::uint16_t portbase = b->portbase;
  const auto server = co_await backend_address(host);
  std::optional<std::vector<std::uint8_t>> reply;
  if (server) {
    reply = co_await query_server(*server, portbase, discovery_wait);
  }
  // The client connects to PORTBASE + 1 of the reply's source: make that the gateway's door.
  const auto rewritten =
      reply ? tunnel::sql602::rewrite_discovery_reply(*reply, static_cast<std::uint16_t>(door_port_ - 1))
            : std::nullopt;
  if (!rewritten || stopped_) {
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  auto [ec, sent] =
      co_await socket_.async_send_to(net::buffer(*rewritten), udp::endpoint(from.address(), query->reply_port), use_ec);
  if (ec) {
    counters_.discovery_dropped.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  counters_.discovery_answered.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace edgerelay::proxy
