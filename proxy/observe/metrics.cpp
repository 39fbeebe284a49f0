// Session counters per worker; see metrics.hpp.
#include "proxy/observe/metrics.hpp"

#include <algorithm>

namespace edgerelay::proxy {

void duration_histogram::observe(std::chrono::nanoseconds d) noexcept {
  const double seconds = std::chrono::duration<double>(d).count();
  const auto at = std::lower_bound(upper_->begin(), upper_->end(), seconds);
  if (at != upper_->end()) {
    ++buckets_[static_cast<std::size_t>(at - upper_->begin())];
  }
  ++count_;
  sum_ += seconds;
}

void duration_histogram::merge(const duration_histogram& other) noexcept {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
}

std::uint64_t duration_histogram::cumulative(std::size_t i) const noexcept {
  std::uint64_t total = 0;
  for (std::size_t b = 0; b <= i && b < buckets_.size(); ++b) total += buckets_[b];
  return total;
}

std::string_view limit_of(const access_record& rec) noexcept {
  if (rec.detail == "tls_handshakes_full") return "tls_handshakes";
  if (rec.detail == "tls_handshakes_per_source") return "tls_handshakes_per_source";
  if (rec.detail == "auth_throttled") return "auth_throttle";
  if (rec.detail == "auth_overloaded") return "auth_verify_queue";
  return {};
}

std::string_view connect_error_of(const access_record& rec) noexcept {
  if (rec.detail == "backend_down") return "backend_down";
  // Through upstream proxies: the hop's reason ("upstream_407", "upstream_unreachable", ...), which
  // says more than the outcome it maps to; the proxy's name stays in the access log.
  if (!rec.via_hop.empty() && !rec.detail.empty()) return rec.detail;
  switch (rec.result) {
    case outcome::network_unreachable:
    case outcome::host_unreachable:
    case outcome::connection_refused:
    case outcome::connect_timeout:
    case outcome::backend_tls_failed: return to_string(rec.result);
    default: return {};
  }
}

namespace {

/// Each phase the record says ran, from its start to its end.
void observe_phases(const access_record& rec, phase_histograms& into) {
  using time_point = std::chrono::steady_clock::time_point;
  const auto span = [](duration_histogram& h, time_point from, time_point to) {
    if (from != time_point{} && to != time_point{} && to >= from) h.observe(to - from);
  };
  span(into.handshake, rec.started, rec.request_at);
  span(into.connect, rec.dial_started, rec.connected_at);
  span(into.tls, rec.tls_started, rec.tls_done);
}

}  // namespace

void worker_metrics::session_started(std::string_view listener) {
  auto it = active_by_listener.find(std::string(listener));
  if (it == active_by_listener.end()) it = active_by_listener.emplace(std::string(listener), 0).first;
  ++it->second;
}

void worker_metrics::session_ended(const access_record& rec) {
  const std::string listener(rec.listener);
  if (auto it = active_by_listener.find(listener); it != active_by_listener.end() && it->second > 0) {
    --it->second;
  }
  ++sessions[session_key{listener, std::string(rec.protocol), std::string(to_string(rec.result))}];
  byte_counts& bytes = bytes_by_listener[listener];
  bytes.up += rec.bytes_up;
  bytes.down += rec.bytes_down;
  if (const auto reason = connect_error_of(rec); !reason.empty()) ++connect_errors[std::string(reason)];
  if (!rec.rule.empty()) {
    ++rule_decisions[rule_key{rec.rule, rec.result == outcome::denied ? "deny" : "allow"}];
  }
  if (const auto limit = limit_of(rec); !limit.empty()) ++limit_rejections[std::string(limit)];
  session_duration.observe(std::chrono::steady_clock::now() - rec.started);
  observe_phases(rec, phases_by_listener[listener]);
  if (rec.protocol == "proxy" && rec.result != outcome::success) {
    ++proxy_header_rejections[rejection_key{listener, std::string(rec.detail)}];
  }
}

void worker_metrics::limit_rejected(std::string_view limit) {
  ++limit_rejections[std::string(limit)];
}

void worker_metrics::merge(const worker_metrics& other) {
  for (const auto& [k, v] : other.sessions) sessions[k] += v;
  for (const auto& [k, v] : other.active_by_listener) active_by_listener[k] += v;
  for (const auto& [k, v] : other.bytes_by_listener) {
    bytes_by_listener[k].up += v.up;
    bytes_by_listener[k].down += v.down;
  }
  for (const auto& [k, v] : other.connect_errors) connect_errors[k] += v;
  for (const auto& [k, v] : other.rule_decisions) rule_decisions[k] += v;
  for (const auto& [k, v] : other.limit_rejections) limit_rejections[k] += v;
  session_duration.merge(other.session_duration);
  for (const auto& [k, v] : other.phases_by_listener) {
    phase_histograms& mine = phases_by_listener[k];
    mine.handshake.merge(v.handshake);
    mine.connect.merge(v.connect);
    mine.tls.merge(v.tls);
  }
  for (const auto& [k, v] : other.proxy_header_rejections) proxy_header_rejections[k] += v;
}

}  // namespace edgerelay::proxy
