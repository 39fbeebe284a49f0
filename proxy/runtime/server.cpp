// Control thread: signals, reload, and total-then-terminal shutdown.
#include "proxy/runtime/server.hpp"

#include <sched.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include "config/load.hpp"
#include "proxy/runtime/capabilities.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/core/deadline.hpp"
#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {
namespace {

/// `workers: auto`: one per CPU this process may run on (taskset, a cpuset), as nproc counts them,
/// so that a gateway confined to one CPU does not run two threads that take turns on it.
unsigned usable_cpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0) {
    return static_cast<unsigned>(CPU_COUNT(&allowed));
  }
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : cores;
}

/// Enough checks waiting to ride out a burst of logins, few enough that the last of them is still
/// answered within a handshake timeout (64 x 37 ms on one thread is about 2.4 s).
constexpr std::size_t verify_queue_limit = 64;

/// One verification thread per two CPUs, at most two: more would only let a login flood take
/// more CPU from the workers.
unsigned verify_threads() {
  return std::clamp(usable_cpus() / 2, 1U, 2U);
}

unsigned worker_count(const server_options& o, const config::config& cfg) {
  if (o.workers != 0) return o.workers;
  if (cfg.workers != 0) return cfg.workers;
  return usable_cpus();
}

tcp::endpoint endpoint_of_spec(const config::endpoint_spec& spec) {
  error_code ec;
  const auto address = net::ip::make_address(spec.host, ec);
  if (ec) {
    throw std::runtime_error(concat("'", spec.host, "' is not an IP address to listen on"));
  }
  return tcp::endpoint(address, spec.port);
}

/// SO_REUSEPORT would let a second edgerelay share a port silently and split its traffic; a probe
/// bind without it fails as an operator expects ("address in use") when anyone holds the port.
void ensure_address_free(const std::string& listener, const tcp::endpoint& at) {
  if (at.port() == 0) {
    return;
  }
  net::io_context probe_context;
  tcp::acceptor probe(probe_context);
  error_code ec;
  probe.open(at.protocol(), ec);
  if (!ec) probe.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec && at.address().is_v6()) probe.set_option(net::ip::v6_only(true), ec);
  if (!ec) probe.bind(at, ec);
  if (ec) {
    throw std::runtime_error(concat("listener '", listener, "': cannot listen on ", to_string(at), ": ", ec.message()));
  }
}

bool same_endpoint(const config::endpoint_spec& a, const config::endpoint_spec& b) {
  return a.host == b.host && a.port == b.port;
}

/// What identifies a version of the file: a rewrite in place or a rename over it both change it.
std::string file_state(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return concat(st.st_ino, ':', st.st_size, ':', st.st_mtim.tv_sec, '.', st.st_mtim.tv_nsec);
}

}  // namespace

server::server(config::config cfg, server_options options)
    : options_(std::move(options)),
      keep_running_(net::make_work_guard(control_)),
      signals_(control_),
      file_watch_(control_) {
  // The baseline for the file watch is taken now, as close to loading as the server gets: a
  // change made while the threads start must still be seen as a change.
  if (!options_.config_path.empty()) {
    config_file_state_ = file_state(options_.config_path);
  }
  log::set_level(cfg.log.level);
  auto built = make_snapshot(std::move(cfg), 1);
  if (!built.snapshot) {
    std::string why;
    for (const auto& e : built.errors) why += (why.empty() ? "" : "; ") + e;
    throw std::runtime_error(why);
  }
  snapshot_ = std::move(built.snapshot);
  backends_ = std::make_unique<backend_runtime>(snapshot_->cfg);
  hooks_ = std::make_unique<session_hooks>(*backends_);
  health_ = std::make_unique<health_monitor>(control_, backends_->health);
  verifier_ = std::make_unique<verify_pool>(verify_threads(), verify_queue_limit);
}

server::~server() {
  for (auto& w : workers_) {
    w->stop_loop();
    w->join();
  }
}

void server::start() {
  if (options_.handle_signals) {
    // Before any listener opens: a signal sent as soon as we serve must find its handler
    // (it is queued until run() starts the control loop).
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.add(SIGHUP);
    wait_signal();
  }
  const unsigned n = worker_count(options_, snapshot_->cfg);
  for (unsigned i = 0; i < n; ++i) {
    const session_services shared{.health = &backends_->health,
                                  .egress = &backends_->egress,
                                  .tls_failures = &tls_failures_,
                                  .kinds = &hooks_->kinds,
                                  .http_extension = &hooks_->sql602_http,
                                  .verifier = verifier_.get(),
                                  .auth = &auth_};
    workers_.push_back(std::make_unique<worker>(i, snapshot_, active_, per_source_, shared));
  }
  for (const auto& l : snapshot_->cfg.listeners) {
    tcp::endpoint at = endpoint_of_spec(l.bind);
    ensure_address_free(l.name, at);
    // Worker 0 binds first so port 0 becomes one concrete port that the others share.
    for (auto& w : workers_) {
      at = w->add_listener(l.name, at);
    }
    bound_.emplace_back(l.name, at);
    log::info("listener", l.name, ": listening on ", to_string(at), " with ", n, " worker(s)");
    if (l.udp_bind) {
      const tcp::endpoint udp_at = endpoint_of_spec(*l.udp_bind);
      auto door = std::make_unique<sql602_udp_door>(control_, l.name, udp::endpoint(udp_at.address(), udp_at.port()),
                                                    at, snapshot_, *backends_);
      log::info("listener", l.name, ": 602SQL discovery and breaks on udp ",
                door->local_endpoint().address().to_string(), ':', door->local_endpoint().port());
      udp_doors_.emplace_back(l.name, std::move(door));
    }
  }
  for (auto& [name, door] : udp_doors_) {
    door->start();
  }
  health_->start(snapshot_->cfg);
  for (auto& w : workers_) {
    w->start();
  }
}

tcp::endpoint server::endpoint_of(std::string_view listener) const {
  for (const auto& [name, ep] : bound_) {
    if (name == listener) return ep;
  }
  throw std::out_of_range(concat("no listener named '", listener, "'"));
}

udp::endpoint server::udp_endpoint_of(std::string_view listener) const {
  for (const auto& [name, door] : udp_doors_) {
    if (name == listener) return door->local_endpoint();
  }
  throw std::out_of_range(concat("no listener named '", listener, "' with udp_bind"));
}

const udp_door_counters& server::udp_counters_of(std::string_view listener) const {
  for (const auto& [name, door] : udp_doors_) {
    if (name == listener) return door->counters();
  }
  throw std::out_of_range(concat("no listener named '", listener, "' with udp_bind"));
}

void server::shutdown() {
  net::post(control_, [this] {
    if (shutting_down_) {
      // A second request skips the grace period.
      force_close_ = true;
      return;
    }
    shutting_down_ = true;
    net::co_spawn(control_, shutdown_sequence(), [](const std::exception_ptr&) {});
  });
}

void server::reload() {
  net::post(control_, [this] { do_reload(); });
}

net::awaitable<void> server::shutdown_sequence() {
  const auto grace = snapshot_->cfg.limits.shutdown_grace;
  log::info("server", "shutting down: no new sessions; draining ", active_.load(), " session(s) for up to ",
            grace.count(), " ms");
  for (auto& w : workers_) w->stop_accepting();
  for (auto& [name, door] : udp_doors_) door->stop();
  health_->stop();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (active_.load() > 0 && !force_close_ && std::chrono::steady_clock::now() < deadline) {
    co_await sleep_for(std::chrono::milliseconds(20));
  }
  if (active_.load() > 0) {
    log::info("server", "closing ", active_.load(), " session(s) still open");
    for (auto& w : workers_) w->close_sessions();
  }
  // Closed sessions finish within a few event-loop turns; stop any loop that still lingers.
  const auto last_call = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (auto& w : workers_) {
    while (!w->finished() && std::chrono::steady_clock::now() < last_call) {
      co_await sleep_for(std::chrono::milliseconds(10));
    }
    w->stop_loop();
    w->join();
  }
  log::info("server", "stopped");
  signals_.cancel();
  file_watch_.cancel();
  keep_running_.reset();
}

void server::do_reload() {
  if (options_.config_path.empty()) {
    log::info("reload", "running the built-in config: nothing to reload");
    return;
  }
  config_file_state_ = file_state(options_.config_path);
  auto loaded = config::load_config_file(options_.config_path);
  for (const auto& d : loaded.diagnostics) {
    if (d.level == config::severity::error) {
      log::error("reload", config::to_string(d));
    } else {
      log::warn("reload", config::to_string(d));
    }
  }
  if (!loaded.value) {
    log::error("reload", "failed; keeping generation ", snapshot_->generation);
    return;
  }
  config::config& next = *loaded.value;
  if (const auto missing = unsupported_features(next); !missing.empty()) {
    for (const auto& m : missing) log::error("reload", m);
    log::error("reload", "failed; keeping generation ", snapshot_->generation);
    return;
  }
  // Certificates are read now: a bad file fails the whole reload and the running contexts stay.
  auto built = make_snapshot(std::move(next), snapshot_->generation + 1);
  if (!built.snapshot) {
    for (const auto& e : built.errors) log::error("reload", e);
    log::error("reload", "failed; keeping generation ", snapshot_->generation);
    return;
  }
  const std::shared_ptr<const runtime_snapshot> snap = std::move(built.snapshot);
  for (const auto& l : snap->cfg.listeners) {
    const auto* old = snapshot_->find_listener(l.name);
    if (old == nullptr) {
      log::warn("reload", "listener '", l.name, "' is new: it needs a restart to open");
    } else if (!same_endpoint(old->bind, l.bind)) {
      log::warn("reload", "listener '", l.name, "': bind change to ", l.bind.host, ':', l.bind.port,
                " needs a restart; still on ", old->bind.host, ':', old->bind.port);
    }
  }
  try {
    log::set_level(snap->cfg.log.level);
    snapshot_ = snap;
    for (auto& w : workers_) w->publish(snap, snap->cfg.reload.recheck_sessions);
    log::info("reload", "ok: generation ", snap->generation, " (", snap->cfg.rules.size(), " rules)");
  } catch (const std::exception& e) {
    log::error("reload", "failed: ", e.what(), "; keeping generation ", snapshot_->generation);
  }
}

void server::wait_signal() {
  signals_.async_wait([this](const error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      log::info("server", "SIGHUP: reloading ", options_.config_path);
      do_reload();
    } else {
      log::info("server", signo == SIGINT ? "SIGINT" : "SIGTERM", " received");
      shutdown();
    }
    wait_signal();
  });
}

void server::watch_config_file() {
  file_watch_.expires_after(std::chrono::seconds(1));
  file_watch_.async_wait([this](const error_code& ec) {
    if (ec || shutting_down_) return;
    const std::string state = file_state(options_.config_path);
    if (!state.empty() && state != config_file_state_) {
      config_file_state_ = state;
      log::info("server", options_.config_path, " changed on disk: reloading");
      do_reload();
    }
    watch_config_file();
  });
}

int server::run() {
  if (!options_.config_path.empty()) {
    watch_config_file();
  }
  control_.run();
  return 0;
}

}  // namespace edgerelay::proxy
