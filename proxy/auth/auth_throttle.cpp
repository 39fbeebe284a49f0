// Failed-login tables: fixed windows from a source's first failure, LRU-bounded.
#include "proxy/auth/auth_throttle.hpp"

#include <algorithm>

namespace edgerelay::proxy {
namespace {

/// A longer name only merges counters with its prefix; it cannot grow an entry without bound.
constexpr std::size_t max_user_key = 256;

}  // namespace

config::ip_address throttle_key(const config::ip_address& source) noexcept {
  config::ip_address key = source;
  if (key.v6) {
    std::fill(key.bytes.begin() + 8, key.bytes.end(), std::uint8_t{0});
  }
  return key;
}

std::size_t auth_throttle::address_hash::operator()(const config::ip_address& a) const noexcept {
  std::size_t h = a.v6 ? 0x9e3779b97f4a7c15ull : 0xcbf29ce484222325ull;
  for (const std::uint8_t b : a.bytes) {
    h = (h ^ b) * 0x100000001b3ull;
  }
  return h;
}

template <class Key, class Value, class Hash>
Value* auth_throttle::lru_map<Key, Value, Hash>::find(const Key& k) {
  const auto it = index_.find(k);
  if (it == index_.end()) {
    return nullptr;
  }
  order_.splice(order_.begin(), order_, it->second);
  return &it->second->second;
}

template <class Key, class Value, class Hash>
Value& auth_throttle::lru_map<Key, Value, Hash>::touch(const Key& k) {
  if (Value* v = find(k)) {
    return *v;
  }
  if (index_.size() >= capacity_) {
    index_.erase(order_.back().first);
    order_.pop_back();
  }
  order_.emplace_front(k, Value{});
  index_.emplace(k, order_.begin());
  return order_.front().second;
}

auth_throttle::auth_throttle(std::size_t max_sources, std::size_t max_users)
    : sources_(max_sources), users_(max_users) {}

bool auth_throttle::refuses(const config::ip_address& source, clock::time_point now) {
  std::lock_guard lock(mu_);
  const source_entry* e = sources_.find(throttle_key(source));
  return e != nullptr && now < e->blocked_until;
}

auth_throttle::failure_verdict auth_throttle::failed(const config::ip_address& source, std::string_view user,
                                                     clock::time_point now,
                                                     const config::auth_failures_config& limits) {
  failure_verdict out;
  std::lock_guard lock(mu_);

  source_entry& s = sources_.touch(throttle_key(source));
  if (now < s.blocked_until) {
    // A verification admitted just before the back-off started: the source is already throttled.
    out.source_failures = limits.max;
  } else {
    if (s.failures == 0 || now - s.window_start >= limits.window) {
      s.window_start = now;
      s.failures = 0;
    }
    out.source_failures = ++s.failures;
    if (s.failures >= limits.max) {
      s.blocked_until = now + limits.backoff;
      s.failures = 0;  // the next window starts with the first failure after the back-off
      out.source_throttled = true;
    }
  }

  user_entry& u = users_.touch(std::string(user.substr(0, max_user_key)));
  if (u.failures == 0 || now - u.window_start >= limits.window) {
    u.window_start = now;
    u.failures = 0;
  }
  u.failures = u.failures == UINT32_MAX ? u.failures : u.failures + 1;
  if (u.failures > limits.max && limits.user_delay.count() > 0) {
    // 250 ms, 500 ms, 1 s, ... for the failures past the limit; the shift stops well before overflow.
    const unsigned doublings = std::min<std::uint32_t>(u.failures - limits.max - 1, 20);
    out.reply_delay = std::min<std::chrono::milliseconds>(min_delay_step * (1LL << doublings), limits.user_delay);
  }
  return out;
}

std::size_t auth_throttle::sources() const {
  std::lock_guard lock(mu_);
  return sources_.size();
}

std::size_t auth_throttle::users() const {
  std::lock_guard lock(mu_);
  return users_.size();
}

}  // namespace edgerelay::proxy
