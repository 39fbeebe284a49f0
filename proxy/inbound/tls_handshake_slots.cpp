// tls_handshake_slots: counts under one lock, a bounded table of reported sources.
#include "proxy/inbound/tls_handshake_slots.hpp"

#include <utility>

#include "proxy/auth/auth_throttle.hpp"

namespace edgerelay::proxy {

tls_handshake_slots::slot::slot(slot&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), key_(other.key_) {}

tls_handshake_slots::slot& tls_handshake_slots::slot::operator=(slot&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = std::exchange(other.owner_, nullptr);
    key_ = other.key_;
  }
  return *this;
}

void tls_handshake_slots::slot::reset() noexcept {
  if (owner_ != nullptr) {
    std::exchange(owner_, nullptr)->release(key_);
  }
}

std::size_t tls_handshake_slots::address_hash::operator()(const config::ip_address& a) const noexcept {
  std::size_t h = a.v6 ? 0x9e3779b97f4a7c15ull : 0xcbf29ce484222325ull;
  for (const std::uint8_t b : a.bytes) {
    h = (h ^ b) * 0x100000001b3ull;
  }
  return h;
}

tls_handshake_slots::tls_handshake_slots(std::size_t max_reported_sources)
    : max_reported_(max_reported_sources == 0 ? 1 : max_reported_sources) {}

tls_handshake_slots::verdict tls_handshake_slots::try_acquire(const config::ip_address& source,
                                                              const config::tls_handshakes_config& limits,
                                                              clock::time_point now) {
  const config::ip_address key = throttle_key(source);
  verdict out;
  std::lock_guard lock(mu_);
  if (running_ >= limits.max) {
    out.refused = handshake_refusal::full;
  } else {
    const auto it = per_source_.try_emplace(key, 0).first;
    if (it->second >= limits.per_source) {
      out.refused = handshake_refusal::per_source;
      if (it->second == 0) per_source_.erase(it);  // a per_source of 0 refuses everyone: keep no entry
    } else {
      ++it->second;
      ++running_;
      out.held = slot(this, key);
      return out;
    }
  }
  ++refused_;
  out.report = note_refusal(key, now, out.refusals);
  return out;
}

bool tls_handshake_slots::note_refusal(const config::ip_address& key, clock::time_point now, std::uint64_t& refusals) {
  if (const auto found = report_index_.find(key); found != report_index_.end()) {
    report_entry& e = *found->second;
    ++e.unreported;
    if (now - e.last_report < report_period) {
      return false;
    }
    refusals = std::exchange(e.unreported, 0);
    e.last_report = now;
    reports_.splice(reports_.begin(), reports_, found->second);
    return true;
  }
  if (report_index_.size() >= max_reported_) {
    // Forgetting the source reported longest ago costs at most one early report of it.
    report_index_.erase(reports_.back().key);
    reports_.pop_back();
  }
  reports_.push_front(report_entry{.key = key, .last_report = now, .unreported = 0});
  report_index_.emplace(key, reports_.begin());
  refusals = 1;
  return true;
}

void tls_handshake_slots::release(const config::ip_address& key) noexcept {
  std::lock_guard lock(mu_);
  --running_;
  const auto it = per_source_.find(key);
  if (it != per_source_.end() && --it->second == 0) {
    per_source_.erase(it);
  }
}

std::uint32_t tls_handshake_slots::running() const {
  std::lock_guard lock(mu_);
  return running_;
}

std::uint32_t tls_handshake_slots::running_from(const config::ip_address& source) const {
  std::lock_guard lock(mu_);
  const auto it = per_source_.find(throttle_key(source));
  return it == per_source_.end() ? 0 : it->second;
}

std::size_t tls_handshake_slots::sources() const {
  std::lock_guard lock(mu_);
  return per_source_.size();
}

std::size_t tls_handshake_slots::reported_sources() const {
  std::lock_guard lock(mu_);
  return report_index_.size();
}

std::uint64_t tls_handshake_slots::refused() const {
  std::lock_guard lock(mu_);
  return refused_;
}

}  // namespace edgerelay::proxy
