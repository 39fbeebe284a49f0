// Per-source session counting.
#include "proxy/runtime/source_limiter.hpp"

namespace edgerelay::proxy {

std::size_t source_limiter::key_hash::operator()(const config::ip_address& a) const noexcept {
  std::size_t h = a.v6 ? 0x9e3779b97f4a7c15ull : 0;
  for (const std::uint8_t b : a.bytes) {
    h = (h ^ b) * 0x100000001b3ull;
  }
  return h;
}

bool source_limiter::try_acquire(const config::ip_address& source, std::uint32_t limit) {
  std::lock_guard lock(mu_);
  std::uint32_t& n = counts_[source];
  if (n >= limit) {
    if (n == 0) counts_.erase(source);
    return false;
  }
  ++n;
  return true;
}

void source_limiter::release(const config::ip_address& source) {
  std::lock_guard lock(mu_);
  const auto it = counts_.find(source);
  if (it != counts_.end() && --it->second == 0) {
    counts_.erase(it);
  }
}

std::uint32_t source_limiter::count(const config::ip_address& source) const {
  std::lock_guard lock(mu_);
  const auto it = counts_.find(source);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace edgerelay::proxy
