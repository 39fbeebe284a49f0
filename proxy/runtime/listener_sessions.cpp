// Per-listener session counting.
#include "proxy/runtime/listener_sessions.hpp"

namespace edgerelay::proxy {

bool listener_sessions::try_acquire(const std::string& listener, std::uint32_t limit) {
  std::lock_guard lock(mu_);
  std::uint32_t& n = counts_[listener];
  if (limit != 0 && n >= limit) {
    if (n == 0) counts_.erase(listener);
    return false;
  }
  ++n;
  return true;
}

void listener_sessions::release(const std::string& listener) {
  std::lock_guard lock(mu_);
  const auto it = counts_.find(listener);
  if (it != counts_.end() && --it->second == 0) counts_.erase(it);
}

std::uint32_t listener_sessions::count(std::string_view listener) const {
  std::lock_guard lock(mu_);
  const auto it = counts_.find(std::string(listener));
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace edgerelay::proxy
