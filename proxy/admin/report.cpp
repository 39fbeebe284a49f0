// /metrics and /status from one scrape; process_* from /proc/self.
#include "proxy/admin/report.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "proxy/admin/exposition.hpp"
#include "proxy/observe/access_log.hpp"

namespace edgerelay::proxy::admin {
namespace {

/// The boot time (unix seconds) from /proc/stat, which /proc/self/stat's start time counts from.
std::optional<double> boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double t = 0;
      if (in >> t) return t;
      return std::nullopt;
    }
    in.ignore(1 << 20, '\n');
  }
  return std::nullopt;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  append_json_escaped(out, s);
  out += '"';
}

}  // namespace

process_stats read_process_stats() {
  process_stats p;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line) && ticks > 0) {
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::vector<std::string> f;
      for (std::string w; rest >> w;) f.push_back(w);
      // rest starts at field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
      if (f.size() > 21) {
        p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
        if (const auto boot = boot_time()) p.start_time = *boot + std::stod(f[19]) / ticks;
        p.virtual_bytes = std::stod(f[20]);
        p.resident_bytes = std::stod(f[21]) * page;
      }
    }
  }
  std::error_code ec;
  double fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
  // The iterator's own descriptor is counted too: one more than the process holds otherwise.
  if (!ec) p.open_fds = fds > 0 ? fds - 1 : 0;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) p.max_fds = static_cast<double>(lim.rlim_cur);
  return p;
}

std::string render_metrics(const scrape& s, const process_stats& p) {
  exposition e;
  const worker_metrics& m = s.sessions;

  e.family("sessions_active", "gauge", "Sessions open now, in all listeners.");
  e.sample("sessions_active", {}, s.sessions_active);

  e.family("sessions_total", "counter", "Sessions ended, by listener, client protocol and access-log result.");
  for (const auto& [key, n] : m.sessions) {
    const auto& [listener, protocol, result] = key;
    e.sample("sessions_total", {{"listener", listener}, {"protocol", protocol}, {"result", result}}, n);
  }

  e.family("bytes_total", "counter", "Bytes relayed by ended sessions: up is client to upstream, down the reverse.");
  for (const auto& [listener, b] : m.bytes_by_listener) {
    e.sample("bytes_total", {{"listener", listener}, {"direction", "up"}}, b.up);
    e.sample("bytes_total", {{"listener", listener}, {"direction", "down"}}, b.down);
  }

  e.family("upstream_connect_errors_total", "counter", "Sessions whose upstream dial failed, by reason.");
  for (const auto& [reason, n] : m.connect_errors) e.sample("upstream_connect_errors_total", {{"reason", reason}}, n);

  e.family("rule_decisions_total", "counter", "Sessions decided by a rule (or default), by rule and action.");
  for (const auto& [key, n] : m.rule_decisions) {
    e.sample("rule_decisions_total", {{"rule", key.first}, {"action", key.second}}, n);
  }

  e.family("limit_rejections_total", "counter", "Connections and logins refused by a limit, by limit.");
  for (const auto& [limit, n] : m.limit_rejections) e.sample("limit_rejections_total", {{"limit", limit}}, n);

  e.family("session_duration_seconds", "histogram", "Lifetime of ended sessions, from accept to access record.");
  e.histogram("session_duration_seconds", {}, m.session_duration);

  const auto phase = [&e, &m](std::string_view name, std::string_view help, duration_histogram phase_histograms::*h) {
    e.family(name, "histogram", help);
    for (const auto& [listener, phases] : m.phases_by_listener) {
      if ((phases.*h).count() > 0) e.histogram(name, {{"listener", listener}}, phases.*h);
    }
  };
  phase("handshake_duration_seconds", "From session start to the client's request read, by listener.",
        &phase_histograms::handshake);
  phase("upstream_connect_duration_seconds",
        "From dial start (resolve, rules, connect) to the upstream connected, by listener.",
        &phase_histograms::connect);
  phase("tls_handshake_duration_seconds", "Client TLS handshakes that completed, by listener.", &phase_histograms::tls);

  e.family("proxy_header_rejections_total", "counter",
           "Connections closed for their PROXY header (missing, malformed, from an untrusted source), by listener "
           "and reason.");
  for (const auto& [key, n] : m.proxy_header_rejections) {
    e.sample("proxy_header_rejections_total", {{"listener", key.first}, {"reason", key.second}}, n);
  }

  e.family("backend_up", "gauge", "1 when the backend's last health check passed, 0 when it failed or none ran.");
  for (const auto& b : s.backends) {
    e.sample("backend_up", {{"backend", b.name}}, static_cast<std::int64_t>(b.health == "up" ? 1 : 0));
  }

  e.family("config_reloads_total", "counter", "Config reloads, by result.");
  e.sample("config_reloads_total", {{"result", "ok"}}, s.reloads.ok);
  e.sample("config_reloads_total", {{"result", "failed"}}, s.reloads.failed);
  e.family("config_last_reload_success_timestamp_seconds", "gauge",
           "When the running config was applied (the start before any reload), unix seconds.");
  e.sample("config_last_reload_success_timestamp_seconds", {}, s.reloads.last_ok_at);
  e.family("config_generation", "gauge", "Generation of the running config (1 at start, +1 per good reload).");
  e.sample("config_generation", {}, s.generation);

  e.family("log_lines_dropped_total", "counter", "Log and access lines dropped because their output stalled.");
  e.sample("log_lines_dropped_total", {}, s.log_lines_dropped);

  e.family("build_info", "gauge", "Always 1; the version is a label.");
  e.sample("build_info", {{"version", s.version}}, static_cast<std::int64_t>(1));

  exposition standard("");
  if (p.cpu_seconds) {
    standard.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    standard.sample("process_cpu_seconds_total", {}, *p.cpu_seconds);
  }
  if (p.open_fds) {
    standard.family("process_open_fds", "gauge", "Number of open file descriptors.");
    standard.sample("process_open_fds", {}, *p.open_fds);
  }
  if (p.max_fds) {
    standard.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    standard.sample("process_max_fds", {}, *p.max_fds);
  }
  if (p.resident_bytes) {
    standard.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    standard.sample("process_resident_memory_bytes", {}, *p.resident_bytes);
  }
  if (p.virtual_bytes) {
    standard.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    standard.sample("process_virtual_memory_bytes", {}, *p.virtual_bytes);
  }
  if (p.start_time) {
    standard.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    standard.sample("process_start_time_seconds", {}, *p.start_time);
  }
  return e.take() + standard.take();
}

std::string render_status(const scrape& s) {
  std::string out = "{\"generation\":" + std::to_string(s.generation);
  out += ",\"ready\":";
  out += s.ready ? "true" : "false";
  out += ",\"sessions_active\":" + std::to_string(s.sessions_active);
  out += ",\"listeners\":[";
  for (std::size_t i = 0; i < s.listeners.size(); ++i) {
    const auto& l = s.listeners[i];
    const auto it = s.sessions.active_by_listener.find(l.name);
    const std::int64_t active = it == s.sessions.active_by_listener.end() ? 0 : it->second;
    if (i > 0) out += ',';
    out += "{\"name\":";
    append_json_string(out, l.name);
    out += ",\"bind\":";
    append_json_string(out, l.bind);
    out += ",\"sessions\":" + std::to_string(active) + "}";
  }
  out += "],\"backends\":[";
  for (std::size_t i = 0; i < s.backends.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"name\":";
    append_json_string(out, s.backends[i].name);
    out += ",\"health\":";
    append_json_string(out, s.backends[i].health);
    out += '}';
  }
  out += "],\"last_reload\":{\"result\":";
  append_json_string(out, s.reloads.last_result);
  out += ",\"at\":" + format_value(s.reloads.last_at);
  out += ",\"message\":";
  append_json_string(out, s.reloads.last_message);
  out += ",\"ok\":" + std::to_string(s.reloads.ok) + ",\"failed\":" + std::to_string(s.reloads.failed);
  out += ",\"last_ok_generation\":" + std::to_string(s.reloads.last_ok_generation) + "}}\n";
  return out;
}

}  // namespace edgerelay::proxy::admin
