// Control thread: signals, reload, and total-then-terminal shutdown.
#include "proxy/runtime/server.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include "config/load.hpp"
#include "proxy/runtime/capabilities.hpp"
#include "proxy/runtime/privileges.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/core/sleep.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/observe/log_sink.hpp"

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

/// How long the start waits for the backends' host names to resolve before opening listeners: a
/// client that names a backend by address is routed to it from its first session, and a DNS server
/// that does not answer delays the start by this much at most.
constexpr std::chrono::milliseconds start_lookup_limit{2000};

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

net::awaitable<void> look_up(backend_addresses& table, std::string host) {
  const auto found = co_await lookup_host(host);
  table.store(host, found);
}

bool holds(const std::vector<std::pair<std::string, tcp::endpoint>>& bound, const tcp::endpoint& at) {
  return std::any_of(bound.begin(), bound.end(), [&at](const auto& entry) { return entry.second == at; });
}

template <class Entries>
auto* entry_named(Entries& entries, std::string_view name) {
  decltype(&*entries.begin()) found = nullptr;
  for (auto& entry : entries) {
    if (entry.first == name) found = &entry;
  }
  return found;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// One scrape's copies of the workers' counters, collected on the control thread.
struct metrics_gather {
  metrics_gather(const net::any_io_executor& ex, std::size_t workers) : timer(ex), parts(workers) {}
  net::steady_timer timer;
  std::vector<std::optional<worker_metrics>> parts;
  std::size_t pending = 0;
};

/// A worker answers within an event-loop turn; one that does not within this is reported without
/// its counters rather than holding the scrape.
constexpr std::chrono::milliseconds gather_limit{1000};

}  // namespace

server::server(config::config cfg, server_options options)
    : options_(std::move(options)), keep_running_(net::make_work_guard(control_)), signals_(control_) {
  // The watch starts, and then the baseline is taken, as close to loading as the server gets: a
  // change made while the threads start is queued and seen once the control loop runs.
  if (!options_.config_path.empty()) {
    watch_ = std::make_unique<config_watch>(control_, options_.config_path, [this] { file_settled(); });
    watch_->start();
    config_file_state_ = identify(options_.config_path);
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
  health_ = std::make_unique<health_monitor>(control_, backends_->health, addresses_);
  verifier_ = std::make_unique<verify_pool>(verify_threads(), verify_queue_limit);
}

server::~server() {
  for (auto& w : workers_) {
    w->stop_loop();
    w->join();
  }
}

void server::start(takeover::inherited_sockets* inherited) {
  inherited_ = inherited;
  struct forget {
    takeover::inherited_sockets*& p;
    ~forget() { p = nullptr; }
  } forget_inherited{inherited_};
  if (options_.handle_signals) {
    // Before any listener opens: a signal sent as soon as we serve must find its handler
    // (it is queued until run() starts the control loop).
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.add(SIGHUP);
    wait_signal();
  }
  addresses_.follow(snapshot_->cfg);
  look_up_backends(resolve_within(addresses_, start_lookup_limit));
  const unsigned n = worker_count(options_, snapshot_->cfg);
  for (unsigned i = 0; i < n; ++i) {
    const session_services shared{.health = &backends_->health,
                                  .egress = &backends_->egress,
                                  .addresses = &addresses_,
                                  .tls_failures = &tls_failures_,
                                  .kinds = &hooks_->kinds,
                                  .http_extension = &hooks_->sql602_http,
                                  .verifier = verifier_.get(),
                                  .auth = &auth_,
                                  .tls_handshakes = &tls_handshakes_,
                                  .plan = options_.plan,
                                  .polling = &polling_,
                                  .inband_breaks = &backends_->breaks,
                                  .upstreams = &upstream_health_};
    workers_.push_back(
        std::make_unique<worker>(i, snapshot_, active_, per_source_, per_listener_, source_rates_, shared));
  }
  const config::config none;
  const listener_plan plan = plan_listeners(none, snapshot_->cfg);
  opened_listeners opened = open_listeners(snapshot_->cfg, plan);
  // Every worker holds its own dup now; systemd keeps its copy for the next start.
  for (auto& p : std::exchange(options_.passed, {})) ::close(p.fd);
  log_listener_changes(plan, opened);
  {
    std::lock_guard lock(listeners_mu_);
    bound_ = std::move(opened.bound);
    udp_doors_ = std::move(opened.doors);
  }
  if (const auto& a = snapshot_->cfg.admin; a.bind) {
    admin_ = std::make_unique<admin::admin_server>(control_, *this, *verifier_, auth_);
    const tcp::endpoint spec = endpoint_of_spec(*a.bind);
    auto fds =
        inherited_ ? inherited_->claim(takeover::socket_kind::admin, "", spec) : std::vector<takeover::owned_fd>{};
    const tcp::endpoint at = fds.empty()
                                 ? admin_->open(spec, admin::access_rules::from(snapshot_->cfg))
                                 : admin_->adopt(fds.front().release(), admin::access_rules::from(snapshot_->cfg));
    if (!fds.empty()) log::info("admin", "taken over on ", to_string(at), " from the running instance");
    {
      std::lock_guard lock(listeners_mu_);
      admin_endpoint_ = at;
    }
    log::info("admin", "listening on ", to_string(at), a.users.empty() ? "" : " (Basic auth)");
  }
  // Bound and keys read (the snapshot holds the TLS contexts): nothing below needs root.
  if (options_.settle_identity) log::info("server", settle_identity(snapshot_->cfg));
  for (auto& [name, door] : udp_doors_) {
    door->start();
  }
  if (inherited_) {
    for (const auto& name : inherited_->unclaimed()) {
      log::info("takeover", name, ": the running instance's socket is not in this config: closed");
    }
  }
  health_->start(snapshot_->cfg);
  for (auto& w : workers_) {
    w->start();
  }
  reloads_.last_ok_at = unix_now();
  reloads_.last_ok_generation = snapshot_->generation;
  started_ = true;
  notify(concat("READY=1\nSTATUS=", serving_status()));
  if (options_.notify != nullptr && options_.notify->watchdog()) {
    rounds_.emplace(workers_.size());
    watchdog_timer_.emplace(control_);
    post_ticks();
    watchdog_period();
    log::info("systemd", "watchdog: pinging every ", (*options_.notify->watchdog() / 2).count(),
              " us while every worker's event loop turns");
  }
}

void server::notify(std::string_view message) {
  if (options_.notify != nullptr) options_.notify->send(message);
}

std::string server::serving_status() const {
  return concat("serving ", snapshot_->cfg.listeners.size(), " listener(s), generation ", snapshot_->generation);
}

void server::post_ticks() {
  const std::uint64_t round = rounds_->round();
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->tick([this, i, round] { net::post(control_, [this, i, round] { rounds_->answered(i, round); }); });
  }
}

void server::watchdog_period() {
  watchdog_timer_->expires_after(*options_.notify->watchdog() / 2);
  watchdog_timer_->async_wait([this](const error_code& ec) {
    if (ec || shutting_down_) return;
    if (rounds_->period_elapsed()) {
      if (watchdog_stalled_) log::info("systemd", "watchdog: every worker answers again; pinging");
      watchdog_stalled_ = false;
      notify("WATCHDOG=1");
      post_ticks();
    } else if (!watchdog_stalled_) {
      watchdog_stalled_ = true;
      std::string which;
      for (const auto i : rounds_->missing()) which += concat(which.empty() ? "" : ", ", i);
      log::error("systemd", "watchdog: worker(s) ", which, " did not run a tick within ",
                 (*options_.notify->watchdog() / 2).count(), " us; no ping until they do");
    }
    watchdog_period();
  });
}

std::optional<tcp::endpoint> server::admin_endpoint() const {
  std::lock_guard lock(listeners_mu_);
  return admin_endpoint_;
}

net::awaitable<admin::scrape> server::take_scrape() {
  admin::scrape s;
  s.generation = snapshot_->generation;
  s.ready = ready();
  s.sessions_active = active_.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(listeners_mu_);
    for (const auto& [name, at] : bound_) s.listeners.push_back({name, to_string(at)});
  }
  for (const auto& b : snapshot_->cfg.backends) {
    s.backends.push_back({b.name, std::string(to_string(backends_->health.state(b.name)))});
  }
  s.reloads = reloads_;
  s.log_lines_dropped = log::lines_dropped();
  s.version = options_.version;

  auto gather = std::make_shared<metrics_gather>(control_.get_executor(), workers_.size());
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i]->finished()) {
      gather->parts[i] = workers_[i]->final_metrics();
      continue;
    }
    ++gather->pending;
    workers_[i]->read_metrics([g = gather, i, ex = control_.get_executor()](const worker_metrics& m) mutable {
      // The copy is made here, on the worker's thread; the control thread only sees it posted.
      net::post(ex, [g = std::move(g), i, copy = m]() mutable {
        g->parts[i] = std::move(copy);
        if (--g->pending == 0) g->timer.cancel();
      });
    });
  }
  if (gather->pending > 0) {
    gather->timer.expires_after(gather_limit);
    co_await gather->timer.async_wait(use_ec);
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    // A worker whose loop ran out of work after the request was posted never runs it; its
    // thread is done, so its counters can be read here.
    if (!gather->parts[i] && workers_[i]->finished()) gather->parts[i] = workers_[i]->final_metrics();
    if (gather->parts[i]) {
      s.sessions.merge(*gather->parts[i]);
    } else {
      log::warn("admin", "worker ", i, " did not answer a scrape within ", gather_limit.count(), " ms");
    }
  }
  co_return s;
}

void server::note_reload(bool ok, std::string why) {
  reloads_.last_at = unix_now();
  if (ok) {
    ++reloads_.ok;
    reloads_.last_result = "ok";
    reloads_.last_message.clear();
    reloads_.last_ok_at = reloads_.last_at;
    reloads_.last_ok_generation = snapshot_->generation;
  } else {
    ++reloads_.failed;
    reloads_.last_result = "failed";
    reloads_.last_message = std::move(why);
  }
}

tcp::endpoint server::endpoint_of(std::string_view listener) const {
  std::lock_guard lock(listeners_mu_);
  for (const auto& [name, ep] : bound_) {
    if (name == listener) return ep;
  }
  throw std::out_of_range(concat("no listener named '", listener, "'"));
}

udp::endpoint server::udp_endpoint_of(std::string_view listener) const {
  std::lock_guard lock(listeners_mu_);
  for (const auto& [name, door] : udp_doors_) {
    if (name == listener) return door->local_endpoint();
  }
  throw std::out_of_range(concat("no listener named '", listener, "' with udp_bind"));
}

const udp_door_counters& server::udp_counters_of(std::string_view listener) const {
  std::lock_guard lock(listeners_mu_);
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
    if (watchdog_timer_) watchdog_timer_->cancel();
    notify(concat("STOPPING=1\nSTATUS=draining ", active_.load(), " session(s)"));
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
  // Still on while the workers run: a scrape in flight reads them. Closed before their loops stop.
  if (admin_) co_await admin_->stop(std::chrono::milliseconds(1000));
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
  // After a handover the path is the new instance's: it is left alone.
  if (takeover_) takeover_->stop(!handed_over_);
  signals_.cancel();
  if (watch_) watch_->stop();
  keep_running_.reset();
}

void server::do_reload() {
  notify(reloading_message(monotonic_usec(), concat("reloading ", options_.config_path)));
  std::string status;
  const bool ok = reload_once(status);
  std::replace(status.begin(), status.end(), '\n', ' ');  // STATUS= is one line
  notify(concat("READY=1\nSTATUS=", ok ? "reload ok; " : "reload failed (", status, ok ? "" : ")", "; ",
                serving_status()));
}

bool server::reload_once(std::string& status) {
  if (options_.config_path.empty()) {
    log::info("reload", "running the built-in config: nothing to reload");
    status = "the built-in config";
    return true;
  }
  if (handed_over_) {
    log::info("reload", "skipped: the listeners were handed over to a new instance; this one only drains");
    status = "handed over; draining";
    return true;
  }
  std::erase_if(retired_doors_, [](const auto& door) { return door->finished(); });
  std::string why;
  auto snap = load_next(why);
  if (!snap) {
    log::error("reload", "failed; keeping generation ", snapshot_->generation);
    status = why;
    note_reload(false, std::move(why));
    return false;
  }
  if (options_.workers == 0 && snap->cfg.workers != snapshot_->cfg.workers) {
    log::warn("reload", "workers: a change takes a restart; still running ", workers_.size());
  }
  const listener_plan plan = plan_listeners(snapshot_->cfg, snap->cfg);
  opened_listeners opened;
  try {
    opened = open_listeners(snap->cfg, plan);
  } catch (const std::exception& e) {
    log::error("reload", e.what());
    log::error("reload", "failed; keeping generation ", snapshot_->generation, " and every listener as it was");
    status = e.what();
    note_reload(false, e.what());
    return false;
  }
  log_listener_changes(plan, opened);
  const auto& was_admin = snapshot_->cfg.admin.bind;
  const auto& next_admin = snap->cfg.admin.bind;
  if (was_admin.has_value() != next_admin.has_value() ||
      (was_admin && (was_admin->host != next_admin->host || was_admin->port != next_admin->port))) {
    log::warn("reload", "admin bind: a change takes a restart; the admin listener stays as it was");
  }
  const auto& was_as = snapshot_->cfg.run_as;
  const auto& next_as = snap->cfg.run_as;
  if (was_as.user != next_as.user || was_as.group != next_as.group || was_as.allow_root != next_as.allow_root) {
    log::warn("reload", "user, group, allow_root: a change takes a restart; still running as before");
  }
  commit(std::move(snap), plan, std::move(opened));
  if (admin_) admin_->follow(admin::access_rules::from(snapshot_->cfg));
  note_reload(true, {});
  log::info("reload", "ok: generation ", snapshot_->generation, " (", snapshot_->cfg.rules.size(), " rules)");
  status = concat(snapshot_->cfg.rules.size(), " rules");
  return true;
}

std::shared_ptr<const runtime_snapshot> server::load_next(std::string& why) {
  config_file_state_ = identify(options_.config_path);
  auto loaded = config::load_config_file(options_.config_path, options_.mode);
  for (const auto& d : loaded.diagnostics) {
    if (d.level == config::severity::error) {
      if (why.empty()) why = config::to_string(d);
      log::error("reload", config::to_string(d));
    } else {
      log::warn("reload", config::to_string(d));
    }
  }
  if (!loaded.value) return nullptr;
  config::config& next = *loaded.value;
  if (const auto missing = unsupported_features(next); !missing.empty()) {
    for (const auto& m : missing) log::error("reload", m);
    why = missing.front();
    return nullptr;
  }
  // Certificates are read now: a bad file fails the whole reload and the running contexts stay.
  auto built = make_snapshot(std::move(next), snapshot_->generation + 1);
  for (const auto& e : built.errors) log::error("reload", e);
  if (!built.snapshot && !built.errors.empty()) why = built.errors.front();
  return std::move(built.snapshot);
}

server::opened_listeners server::open_listeners(const config::config& next, const listener_plan& plan) {
  opened_listeners out;
  try {
    for (std::size_t i = 0; i < plan.steps.size(); ++i) {
      const auto& step = plan.steps[i];
      const auto& l = next.listeners[i];
      if (step.keep_acceptors) {
        out.bound.emplace_back(l.name, entry_named(bound_, step.predecessor)->second);
        continue;
      }
      if (const auto* passed = started_ ? nullptr : passed_for(options_.passed, l.name)) {
        tcp::endpoint at = endpoint_of_spec(l.bind);
        for (auto& w : workers_) at = w->adopt_listener(l.name, passed->fd);
        log::info("listener", l.name, ": accepting on the socket passed as fd ", passed->fd, " (", to_string(at),
                  ", socket activation)");
        out.bound.emplace_back(l.name, at);
        out.opened.push_back(l.name);
        continue;
      }
      out.bound.emplace_back(l.name, open_acceptors(l));
      out.opened.push_back(l.name);
    }
    for (std::size_t i = 0; i < plan.steps.size(); ++i) {
      const auto& l = next.listeners[i];
      if (!l.udp_bind || !plan.steps[i].udp_from.empty()) continue;
      const tcp::endpoint udp_at = endpoint_of_spec(*l.udp_bind);
      auto fds = inherited_ ? inherited_->claim(takeover::socket_kind::udp, l.name, udp_at)
                            : std::vector<takeover::owned_fd>{};
      if (!fds.empty()) {
        out.doors.emplace_back(l.name, std::make_unique<sql602_udp_door>(control_, l.name, fds.front().release(),
                                                                         out.bound[i].second, snapshot_, *backends_));
        log::info("listener", l.name, ": udp_bind taken over from the running instance");
        continue;
      }
      out.doors.emplace_back(
          l.name, std::make_unique<sql602_udp_door>(control_, l.name, udp::endpoint(udp_at.address(), udp_at.port()),
                                                    out.bound[i].second, snapshot_, *backends_));
    }
  } catch (...) {
    for (auto& w : workers_) w->discard_opened();
    throw;
  }
  return out;
}

tcp::endpoint server::open_acceptors(const config::listener_config& l) {
  tcp::endpoint at = endpoint_of_spec(l.bind);
  auto fds = inherited_ ? inherited_->claim(takeover::socket_kind::tcp, l.name, at) : std::vector<takeover::owned_fd>{};
  if (!fds.empty()) {
    // Every acceptor of the running instance carries on here, so no connection waiting in one of
    // their queues is lost; workers beyond their number bind beside them (SO_REUSEPORT).
    const std::size_t taken = fds.size();
    for (std::size_t i = 0; i < taken; ++i) {
      at = workers_[i % workers_.size()]->take_listener(l.name, fds[i].release());
    }
    for (std::size_t i = taken; i < workers_.size(); ++i) {
      workers_[i]->open_listener(l.name, at);
    }
    log::info("listener", l.name, ": taken over on ", to_string(at), " (", taken,
              " socket(s) from the running instance)");
    return at;
  }
  // An address one of our own listeners holds is free for us: SO_REUSEPORT lets the new
  // acceptors bind beside the old ones, which close when the reload commits.
  if (!holds(bound_, at)) ensure_address_free(l.name, at);
  // Worker 0 binds first so port 0 becomes one concrete port that the others share.
  for (auto& w : workers_) {
    at = w->open_listener(l.name, at);
  }
  return at;
}

void server::commit(std::shared_ptr<const runtime_snapshot> snap, const listener_plan& plan, opened_listeners opened) {
  acceptor_changes changes{.close = plan.close, .rename = {}};
  for (const auto& step : plan.steps) {
    if (step.keep_acceptors && step.predecessor != step.name) changes.rename.emplace_back(step.predecessor, step.name);
  }
  udp_doors doors;
  std::vector<sql602_udp_door*> started;
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const auto& step = plan.steps[i];
    if (!step.udp_from.empty()) {
      auto* kept = entry_named(udp_doors_, step.udp_from);
      kept->second->follow(step.name, opened.bound[i].second);
      doors.emplace_back(step.name, std::move(kept->second));
    } else if (auto* fresh = entry_named(opened.doors, step.name)) {
      started.push_back(fresh->second.get());
      doors.emplace_back(step.name, std::move(fresh->second));
    }
  }
  for (auto& [name, door] : udp_doors_) {
    if (door) {
      door->stop();
      retired_doors_.push_back(std::move(door));
    }
  }
  {
    std::lock_guard lock(listeners_mu_);
    bound_ = std::move(opened.bound);
    udp_doors_ = std::move(doors);
  }
  log::set_level(snap->cfg.log.level);
  snapshot_ = std::move(snap);
  // Before the workers see the new backends: a host name kept keeps its addresses meanwhile.
  addresses_.follow(snapshot_->cfg);
  look_up_backends(addresses_.names());
  for (auto& w : workers_) w->publish(snapshot_, snapshot_->cfg.reload.recheck_sessions, changes);
  for (auto* door : started) door->start();
  const auto restarted = health_->follow(snapshot_->cfg);
  backends_->health.follow(snapshot_->cfg, restarted);
  backends_->egress.follow(snapshot_->cfg);
}

void server::log_listener_changes(const listener_plan& plan, const opened_listeners& opened) const {
  for (const auto& name : plan.close) {
    const auto heir = std::find_if(plan.steps.begin(), plan.steps.end(),
                                   [&name](const listener_step& s) { return s.predecessor == name; });
    const auto* was = entry_named(bound_, name);
    const std::string where = was == nullptr ? std::string("?") : to_string(was->second);
    if (heir == plan.steps.end()) {
      log::info("listener", name, ": removed: no longer accepting on ", where, "; its sessions finish as they are");
    } else {
      log::info("listener", name, ": moved: no longer accepting on ", where);
    }
  }
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const auto& step = plan.steps[i];
    const auto& [name, at] = opened.bound[i];
    if (std::find(opened.opened.begin(), opened.opened.end(), name) != opened.opened.end()) {
      log::info("listener", name, ": listening on ", to_string(at), " with ", workers_.size(), " worker(s)");
    } else if (step.predecessor != name) {
      log::info("listener", step.predecessor, ": renamed to '", name, "' on ", to_string(at));
    }
  }
  for (const auto& name : plan.close_udp) {
    if (const auto* door = entry_named(udp_doors_, name)) {
      log::info("listener", name, ": udp_bind ", door->second->local_endpoint().address().to_string(), ':',
                door->second->local_endpoint().port(), " closed");
    }
  }
  for (const auto& [name, door] : opened.doors) {
    log::info("listener", name, ": 602SQL discovery and breaks on udp ", door->local_endpoint().address().to_string(),
              ':', door->local_endpoint().port());
  }
}

void server::listen_for_takeover() {
  if (options_.takeover_socket.empty()) return;
  takeover::listener::hooks hooks{.gather = [this] { return gather_handover(); },
                                  .hand_over = [this] { return hand_over(); },
                                  .refusal = [this]() -> std::string {
                                    if (handed_over_) return "this instance has already handed its listeners over";
                                    if (shutting_down_) return "this instance is shutting down";
                                    return {};
                                  }};
  auto l = std::make_unique<takeover::listener>(control_, options_.takeover_socket, options_.version, std::move(hooks));
  try {
    l->start();
  } catch (const std::exception& e) {
    log::warn("takeover", e.what(), "; an upgrade with --takeover cannot reach this instance");
    return;
  }
  log::info("takeover", "handing listeners over on ", options_.takeover_socket, " to `edgerelay --takeover`");
  takeover_ = std::move(l);
}

namespace {

/// One takeover's dups from the workers, collected on the control thread.
struct lent_gather {
  lent_gather(const net::any_io_executor& ex, std::size_t workers) : timer(ex), parts(workers) {}
  ~lent_gather() {
    for (auto& part : parts) {
      for (auto& [name, fd] : part.value_or(std::vector<std::pair<std::string, int>>{})) ::close(fd);
    }
  }
  net::steady_timer timer;
  std::vector<std::optional<std::vector<std::pair<std::string, int>>>> parts;
  std::size_t pending = 0;
};

}  // namespace

net::awaitable<takeover::handover_sockets> server::gather_handover() {
  takeover::handover_sockets out;
  auto gather = std::make_shared<lent_gather>(control_.get_executor(), workers_.size());
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i]->finished()) continue;
    ++gather->pending;
    workers_[i]->lend_listeners([g = gather, i, ex = control_.get_executor()](auto lent) mutable {
      net::post(ex, [g = std::move(g), i, lent = std::move(lent)]() mutable {
        g->parts[i] = std::move(lent);
        if (--g->pending == 0) g->timer.cancel();
      });
    });
  }
  if (gather->pending > 0) {
    gather->timer.expires_after(gather_limit);
    co_await gather->timer.async_wait(use_ec);
  }
  if (gather->pending > 0) {
    out.error =
        concat(gather->pending, " worker(s) did not lend their listening sockets within ", gather_limit.count(), " ms");
    co_return out;
  }
  // In the order of bound_; a listener that a reload is closing right now is left out.
  for (const auto& [name, at] : bound_) {
    takeover::offered_socket offered{takeover::socket_kind::tcp, name, at.address().to_string(), at.port(), 0};
    for (auto& part : gather->parts) {
      if (!part) continue;
      for (auto& [listener, fd] : *part) {
        if (listener != name || fd < 0) continue;
        out.fds.emplace_back(std::exchange(fd, -1));
        ++offered.fds;
      }
    }
    if (offered.fds > 0) out.sockets.push_back(std::move(offered));
  }
  for (auto& part : gather->parts) {
    if (!part) continue;
    std::erase_if(*part, [](const auto& entry) { return entry.second < 0; });
  }
  for (auto& [name, door] : udp_doors_) {
    const int fd = door->lend_socket();
    if (fd < 0) continue;
    const auto at = door->local_endpoint();
    out.fds.emplace_back(fd);
    out.sockets.push_back({takeover::socket_kind::udp, name, at.address().to_string(), at.port(), 1});
  }
  if (admin_) {
    const int fd = admin_->native_listener() < 0 ? -1 : ::fcntl(admin_->native_listener(), F_DUPFD_CLOEXEC, 0);
    if (fd >= 0) {
      const auto at = admin_->local_endpoint();
      out.fds.emplace_back(fd);
      out.sockets.push_back({takeover::socket_kind::admin, "", at.address().to_string(), at.port(), 1});
    }
  }
  co_return out;
}

std::uint64_t server::hand_over() {
  handed_over_ = true;
  for (auto& w : workers_) w->hand_over();
  for (auto& [name, door] : udp_doors_) door->hand_over();
  if (admin_) admin_->stop_accepting();
  const auto sessions = active_.load();
  shutdown();
  return sessions < 0 ? 0 : static_cast<std::uint64_t>(sessions);
}

void server::look_up_backends(std::vector<std::string> names) {
  for (auto& name : names) {
    net::co_spawn(control_, look_up(addresses_, std::move(name)), [](const std::exception_ptr&) {});
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

void server::file_settled() {
  if (shutting_down_) return;
  const auto now = identify(options_.config_path);
  if (now && now != config_file_state_) {
    log::info("server", options_.config_path, " changed on disk: reloading");
    do_reload();
  }
}

int server::run() {
  control_.run();
  return 0;
}

}  // namespace edgerelay::proxy
