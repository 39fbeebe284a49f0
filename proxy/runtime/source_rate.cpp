// Token buckets per client address.
#include "proxy/runtime/source_rate.hpp"

#include <algorithm>

namespace edgerelay::proxy {

std::size_t source_rate::key_hash::operator()(const config::ip_address& a) const noexcept {
  std::size_t h = a.v6 ? 0x9e3779b97f4a7c15ull : 0;
  for (const std::uint8_t b : a.bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

bool source_rate::try_take(const config::ip_address& source, std::uint32_t rate, clock::time_point now) {
  if (rate == 0) return true;
  const double capacity = rate;
  std::lock_guard lock(mu_);
  auto it = buckets_.find(source);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_sources) prune(rate, now);
    it = buckets_.emplace(source, bucket{capacity, now}).first;
  }
  bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens = std::min(capacity, b.tokens + std::max(0.0, elapsed) * capacity);
  b.last = std::max(b.last, now);
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

void source_rate::prune(std::uint32_t rate, clock::time_point now) {
  const double capacity = rate;
  std::erase_if(buckets_, [&](const auto& entry) {
    const double elapsed = std::chrono::duration<double>(now - entry.second.last).count();
    return entry.second.tokens + elapsed * capacity >= capacity;
  });
  if (buckets_.size() >= max_sources) buckets_.clear();
}

std::size_t source_rate::tracked() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace edgerelay::proxy
