// Worker thread, accept loops (with EMFILE back-off) and session spawning.
#include "proxy/runtime/worker.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <utility>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include "config/address.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/core/endpoint.hpp"
#include "proxy/core/sleep.hpp"
#include "proxy/inbound/proxy_header.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/session/session.hpp"

namespace edgerelay::proxy {
namespace {

/// SO_REUSEPORT as a public SettableSocketOption (Asio's own boolean option lives in detail::).
class reuse_port {
 public:
  template <class Protocol>
  int level(const Protocol&) const {
    return SOL_SOCKET;
  }
  template <class Protocol>
  int name(const Protocol&) const {
    return SO_REUSEPORT;
  }
  template <class Protocol>
  const void* data(const Protocol&) const {
    return &value_;
  }
  template <class Protocol>
  std::size_t size(const Protocol&) const {
    return sizeof value_;
  }

 private:
  int value_ = 1;
};

bool out_of_descriptors(const error_code& ec) {
  const int v = ec.value();
  return ec.category() == boost::system::system_category() &&
         (v == EMFILE || v == ENFILE || v == ENOBUFS || v == ENOMEM);
}

/// Completion of a session coroutine: counts it out and logs what escaped it.
struct session_done {
  std::atomic<std::int64_t>* active;
  source_limiter* per_source;
  config::ip_address source;
  listener_sessions* per_listener;
  std::string listener;
  bool holds_source = true;  ///< false behind a balancer: the session holds its client's count itself
  void operator()(const std::exception_ptr& ep) const {
    active->fetch_sub(1, std::memory_order_relaxed);
    if (holds_source) per_source->release(source);
    per_listener->release(listener);
    if (ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        log::error("session", "ended by an exception: ", e.what());
      } catch (...) {
        log::error("session", "ended by an unknown exception");
      }
    }
  }
};

/// One per_source count, given back when the session that took it ends.
struct source_hold {
  source_limiter& limiter;
  config::ip_address source;
  source_hold(source_limiter& l, const config::ip_address& s) : limiter(l), source(s) {}
  source_hold(const source_hold&) = delete;
  source_hold& operator=(const source_hold&) = delete;
  ~source_hold() { limiter.release(source); }
};

/// A session on a proxy_protocol listener: the header gate first. The client a balancer's header
/// names then takes its per_source count, which the balancer's own address did not at accept.
net::awaitable<void> behind_proxy_protocol(tcp::socket sock, session_context ctx, worker_services& services,
                                           bool from_balancer) {
  header_gate gate;
  if (from_balancer) {
    gate = co_await read_proxy_header(sock, ctx);
  } else {
    gate = co_await refuse_untrusted_header(sock, ctx);
  }
  if (!gate.pass) {
    record_refused_header(gate, ctx);
    co_return;
  }
  if (!from_balancer) {
    co_await run_session(std::move(sock), std::move(ctx));
    co_return;
  }
  ctx.peer = gate.client;
  if (gate.local.port() != 0) ctx.local = gate.local;
  if (gate.origin) ctx.proxied = &*gate.origin;
  const config::ip_address source = to_config_address(ctx.peer.address());
  // The limits the balancer's own address skipped at accept apply to the client it names.
  const char* refused_by = nullptr;
  if (!services.source_rates->try_take(source, ctx.snapshot->cfg.limits.per_source_rate)) {
    refused_by = "per_source_rate";
  } else if (!services.per_source->try_acquire(source, ctx.snapshot->cfg.limits.per_source)) {
    refused_by = "per_source";
  }
  if (refused_by != nullptr) {
    services.metrics.limit_rejected(refused_by);
    access_record rec;
    rec.listener = ctx.listener->name;
    rec.client = to_string(ctx.peer);
    rec.result = outcome::denied;
    rec.detail = refused_by;
    if (gate.origin) record_proxied(*gate.origin, rec);
    services.metrics.session_ended(rec);
    if (ctx.snapshot->cfg.log.access_json) write_access_line(rec);
    co_return;
  }
  const source_hold held{*services.per_source, source};
  co_await run_session(std::move(sock), std::move(ctx));
}

/// The address clients reach through `acceptor`: its own, or, bound to a wildcard, none until a
/// session asks its socket.
tcp::endpoint listening_address(const tcp::acceptor& acceptor) {
  error_code ec;
  const tcp::endpoint at = acceptor.local_endpoint(ec);
  return ec ? tcp::endpoint{} : at;
}

bool any_sends_proxy(const runtime_snapshot& s) {
  return std::any_of(s.cfg.backends.begin(), s.cfg.backends.end(),
                     [](const config::backend_config& b) { return b.send_proxy_v2; });
}

/// `name` is the slot's: a reload that renames the listener renames it under the loop.
net::awaitable<void> accept_loop(tcp::acceptor& acceptor, const std::string& name, worker_services& services) {
  auto snapshot = services.snapshot;
  const config::listener_config* listener = snapshot->find_listener(name);
  const tcp::endpoint listening = listening_address(acceptor);
  bool sends_proxy = any_sends_proxy(*snapshot);
  auto last_warning = std::chrono::steady_clock::time_point{};
  for (;;) {
    tcp::endpoint peer;
    auto [ec, sock] = co_await acceptor.async_accept(peer, use_ec);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) {
        break;
      }
      if (out_of_descriptors(ec)) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_warning > std::chrono::seconds(1)) {
          last_warning = now;
          log::warn("listener", name, ": accept failed: ", ec, "; backing off 100 ms");
        }
        // The pending connection stays in the backlog; retrying at once would spin.
        co_await sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    if (services.snapshot != snapshot) {
      // A reload kept this acceptor: the listener's new settings and the new rules apply.
      const auto* updated = services.snapshot->find_listener(name);
      if (updated == nullptr) {
        // Accepted just before the reload that removed the listener closed this acceptor: the
        // client had no answer yet, so it is refused like the connections behind it.
        continue;
      }
      snapshot = services.snapshot;
      listener = updated;
      sends_proxy = any_sends_proxy(*snapshot);
    }
    const auto limit = static_cast<std::int64_t>(snapshot->cfg.limits.max_sessions);
    if (services.active_sessions->load(std::memory_order_relaxed) >= limit) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_warning > std::chrono::seconds(1)) {
        last_warning = now;
        log::warn("listener", name, ": max_sessions (", limit, ") reached; refusing connections");
      }
      services.metrics.limit_rejected("max_sessions");
      continue;  // `sock` closes here
    }
    const bool from_balancer = trusted_balancer(*listener, peer.address());
    const config::ip_address source = to_config_address(peer.address());
    if (!from_balancer && !services.source_rates->try_take(source, snapshot->cfg.limits.per_source_rate)) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_warning > std::chrono::seconds(1)) {
        last_warning = now;
        log::warn("listener", name, ": per_source_rate (", snapshot->cfg.limits.per_source_rate, "/s) exceeded by ",
                  config::to_string(source), "; refusing its new connections");
      }
      services.metrics.limit_rejected("per_source_rate");
      continue;
    }
    if (!services.per_listener->try_acquire(listener->name, listener->max_sessions)) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_warning > std::chrono::seconds(1)) {
        last_warning = now;
        log::warn("listener", name, ": its max_sessions (", listener->max_sessions, ") reached; refusing connections");
      }
      services.metrics.limit_rejected("max_sessions");
      continue;
    }
    if (!from_balancer && !services.per_source->try_acquire(source, snapshot->cfg.limits.per_source)) {
      services.per_listener->release(listener->name);
      const auto now = std::chrono::steady_clock::now();
      if (now - last_warning > std::chrono::seconds(1)) {
        last_warning = now;
        log::warn("listener", name, ": per_source limit (", snapshot->cfg.limits.per_source, ") reached for ",
                  config::to_string(source), "; refusing connections");
      }
      services.metrics.limit_rejected("per_source");
      continue;
    }
    services.active_sessions->fetch_add(1, std::memory_order_relaxed);
    services.metrics.session_started(listener->name);
    session_context ctx{peer, snapshot, listener, &services.lent};
    ctx.local = listening;
    if (sends_proxy && listening.address().is_unspecified()) {
      error_code ignored;
      ctx.local = sock.local_endpoint(ignored);  // a send_proxy backend's header names it
    }
    if (listener->proxy_protocol) {
      ctx.accepted_at = std::chrono::steady_clock::now();
      net::co_spawn(acceptor.get_executor(),
                    behind_proxy_protocol(std::move(sock), std::move(ctx), services, from_balancer),
                    session_done{services.active_sessions, services.per_source, source, services.per_listener,
                                 listener->name, !from_balancer});
      continue;
    }
    net::co_spawn(
        acceptor.get_executor(), run_session(std::move(sock), std::move(ctx)),
        session_done{services.active_sessions, services.per_source, source, services.per_listener, listener->name});
  }
}

}  // namespace

worker::worker(unsigned index, std::shared_ptr<const runtime_snapshot> snapshot,
               std::atomic<std::int64_t>& active_sessions, source_limiter& per_source, listener_sessions& per_listener,
               source_rate& source_rates, session_services shared)
    : index_(index) {
  services_.per_listener = &per_listener;
  services_.source_rates = &source_rates;
  services_.snapshot = std::move(snapshot);
  services_.active_sessions = &active_sessions;
  services_.per_source = &per_source;
  services_.lent = shared;
  services_.lent.pools = &services_.pools;
  services_.lent.registry = &services_.registry;
  services_.lent.associations = &services_.registry.associations();
  services_.lent.passwords = &services_.passwords;
  services_.lent.current_snapshot = &services_.snapshot;
  services_.lent.metrics = &services_.metrics;
}

worker::~worker() {
  if (thread_.joinable()) {
    ioc_.stop();
    thread_.join();
  }
}

tcp::endpoint worker::open_listener(const std::string& listener, const tcp::endpoint& at) {
  auto slot = std::make_unique<acceptor_slot>(acceptor_slot{listener, tcp::acceptor(ioc_)});
  tcp::acceptor& a = slot->acceptor;
  error_code ec;
  a.open(at.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.set_option(reuse_port(), ec);
  if (!ec && at.address().is_v6()) a.set_option(net::ip::v6_only(true), ec);
  // Accepted sockets inherit both options from the listening socket on Linux: two syscalls
  // fewer per session than setting them on every accepted socket.
  if (!ec) a.set_option(tcp::no_delay(true), ec);
  if (!ec) a.set_option(net::socket_base::keep_alive(true), ec);
  if (!ec) a.bind(at, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error(concat("listener '", listener, "': cannot listen on ", to_string(at), ": ", ec.message()));
  }
  const tcp::endpoint bound = a.local_endpoint(ec);
  if (ec) {
    throw std::runtime_error(
        concat("listener '", listener, "': cannot read the address bound for ", to_string(at), ": ", ec.message()));
  }
  opened_.push_back(std::move(slot));
  return bound;
}

tcp::endpoint worker::adopt_listener(const std::string& listener, int fd) {
  // systemd keeps its copy (a restart passes it again): this worker accepts on its own.
  const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    throw std::runtime_error(concat("listener '", listener, "': cannot duplicate the passed fd ", fd, ": ",
                                    error_code(errno, boost::system::system_category()).message()));
  }
  return own_listener(listener, own, concat("the passed fd ", fd));
}

tcp::endpoint worker::take_listener(const std::string& listener, int fd) {
  return own_listener(listener, fd, "the socket handed over");
}

tcp::endpoint worker::own_listener(const std::string& listener, int fd, const std::string& what) {
  auto slot = std::make_unique<acceptor_slot>(acceptor_slot{listener, tcp::acceptor(ioc_)});
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      (address.ss_family != AF_INET && address.ss_family != AF_INET6)) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(
        concat("listener '", listener, "': ", what, " is not a TCP socket (", std::strerror(err), ")"));
  }
  error_code ec;
  slot->acceptor.assign(address.ss_family == AF_INET ? tcp::v4() : tcp::v6(), fd, ec);
  if (ec) {
    ::close(fd);
    throw std::runtime_error(concat("listener '", listener, "': cannot use ", what, ": ", ec.message()));
  }
  // As open_listener() sets them; accepted sockets inherit both.
  slot->acceptor.set_option(tcp::no_delay(true), ec);
  slot->acceptor.set_option(net::socket_base::keep_alive(true), ec);
  const tcp::endpoint bound = slot->acceptor.local_endpoint(ec);
  if (ec) {
    throw std::runtime_error(
        concat("listener '", listener, "': cannot read the address of ", what, ": ", ec.message()));
  }
  opened_.push_back(std::move(slot));
  return bound;
}

void worker::lend_listeners(std::function<void(std::vector<std::pair<std::string, int>>)> lend) {
  net::post(ioc_, [this, lend = std::move(lend)] {
    std::vector<std::pair<std::string, int>> out;
    for (auto& slot : acceptors_) {
      if (!slot->acceptor.is_open()) continue;
      const int fd = ::fcntl(slot->acceptor.native_handle(), F_DUPFD_CLOEXEC, 0);
      if (fd >= 0) {
        out.emplace_back(slot->listener, fd);
      } else {
        log::warn("takeover", "worker ", index_, ": cannot lend listener ", slot->listener, ": ", std::strerror(errno));
      }
    }
    lend(std::move(out));
  });
}

void worker::hand_over() {
  net::post(ioc_, [this] {
    for (auto& slot : acceptors_) {
      // release() takes the socket out of this event loop's epoll set explicitly; a plain close
      // would leave it there, since the new process still holds the same open socket.
      error_code ignored;
      const int fd = slot->acceptor.release(ignored);
      if (fd >= 0) ::close(fd);
    }
  });
}

void worker::spawn_accept_loop(std::unique_ptr<acceptor_slot> slot) {
  acceptor_slot* s = acceptors_.emplace_back(std::move(slot)).get();
  net::co_spawn(ioc_, accept_loop(s->acceptor, s->listener, services_), [this, s](const std::exception_ptr& ep) {
    if (ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        log::error("listener", s->listener, ": accept loop failed: ", e.what());
      }
    }
    std::erase_if(acceptors_, [s](const auto& owned) { return owned.get() == s; });
  });
}

void worker::start() {
  for (auto& slot : std::exchange(opened_, {})) {
    spawn_accept_loop(std::move(slot));
  }
  thread_ = std::thread([this] {
    try {
      ioc_.run();
    } catch (const std::exception& e) {
      log::error("worker", "worker ", index_, " stopped: ", e.what());
    }
    finished_.store(true, std::memory_order_release);
  });
}

void worker::stop_accepting() {
  net::post(ioc_, [this] {
    for (auto& slot : acceptors_) {
      error_code ignored;
      slot->acceptor.close(ignored);
    }
  });
}

void worker::close_sessions() {
  net::post(ioc_, [this] { services_.registry.close_all(); });
}

void worker::publish(std::shared_ptr<const runtime_snapshot> snapshot, bool recheck, acceptor_changes changes) {
  net::post(ioc_, [this, recheck, s = std::move(snapshot), changes = std::move(changes),
                   opened = std::exchange(opened_, {})]() mutable {
    services_.snapshot = std::move(s);
    // Closes first: a listener that moved has its old acceptors closed and its new ones added.
    for (auto& slot : acceptors_) {
      if (std::find(changes.close.begin(), changes.close.end(), slot->listener) != changes.close.end()) {
        error_code ignored;
        slot->acceptor.close(ignored);
      }
    }
    for (const auto& [from, to] : changes.rename) {
      for (auto& slot : acceptors_) {
        if (slot->listener == from && slot->acceptor.is_open()) slot->listener = to;
      }
    }
    for (auto& slot : opened) {
      spawn_accept_loop(std::move(slot));
    }
    if (recheck) {
      const std::size_t closed = services_.registry.recheck(services_.snapshot);
      if (closed > 0) {
        log::info("reload", "worker ", index_, ": closed ", closed, " session(s) the new rules deny");
      }
    }
  });
}

void worker::read_metrics(std::function<void(const worker_metrics&)> reader) {
  net::post(ioc_, [this, reader = std::move(reader)] { reader(services_.metrics); });
}

void worker::tick(std::function<void()> answer) {
  net::post(ioc_, std::move(answer));
}

void worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace edgerelay::proxy
