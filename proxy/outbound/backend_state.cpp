// Egress address pools and the health board.
#include "proxy/outbound/backend_state.hpp"

#include <algorithm>

#include "config/address.hpp"

namespace edgerelay::proxy {

namespace {
std::uint32_t host_order(const std::array<std::uint8_t, 4>& a) {
  return static_cast<std::uint32_t>(a[0]) << 24U | static_cast<std::uint32_t>(a[1]) << 16U |
         static_cast<std::uint32_t>(a[2]) << 8U | a[3];
}
}  // namespace

egress_pools::lease& egress_pools::lease::operator=(lease&& o) noexcept {
  if (this != &o) {
    reset();
    pools_ = std::exchange(o.pools_, nullptr);
    backend_ = std::move(o.backend_);
    address_ = o.address_;
  }
  return *this;
}

void egress_pools::lease::reset() noexcept {
  if (pools_ != nullptr) {
    pools_->release(backend_, address_);
    pools_ = nullptr;
  }
}

ipv4_bytes egress_pools::lease::address() const noexcept {
  return {static_cast<std::uint8_t>(address_ >> 24U), static_cast<std::uint8_t>(address_ >> 16U),
          static_cast<std::uint8_t>(address_ >> 8U), static_cast<std::uint8_t>(address_)};
}

egress_pools::lease egress_pools::acquire(const config::backend_config& b) {
  std::lock_guard lock(mu_);
  auto it = in_use_.find(b.name);
  if (it == in_use_.end()) {
    it = in_use_.emplace(b.name, std::set<std::uint32_t>{}).first;
  }
  auto& used = it->second;
  for (const auto& r : b.egress) {
    const std::uint64_t last = host_order(r.last);
    // Each step either returns, passes an address in use, or skips the unusable upper half of a
    // /24, so the walk is bounded by the number of addresses in use.
    for (std::uint64_t a = host_order(r.first); a <= last;) {
      if ((a & 0xFFU) >= 128) {
        a = (a | 0xFFU) + 1;
        continue;
      }
      const auto v = static_cast<std::uint32_t>(a);
      if (used.insert(v).second) {
        return lease(this, b.name, v);
      }
      ++a;
    }
  }
  return {};
}

std::size_t egress_pools::in_use(std::string_view backend) const {
  std::lock_guard lock(mu_);
  const auto it = in_use_.find(backend);
  return it == in_use_.end() ? 0 : it->second.size();
}

void egress_pools::follow(const config::config& cfg) {
  std::lock_guard lock(mu_);
  std::erase_if(in_use_, [&cfg](const auto& entry) {
    const bool configured = std::any_of(cfg.backends.begin(), cfg.backends.end(),
                                        [&entry](const config::backend_config& b) { return b.name == entry.first; });
    return !configured && entry.second.empty();
  });
}

void egress_pools::release(const std::string& backend, std::uint32_t address) noexcept {
  std::lock_guard lock(mu_);
  const auto it = in_use_.find(backend);
  if (it != in_use_.end()) {
    it->second.erase(address);
  }
}

// ---------------------------------------------------------------------------------------------

std::string_view to_string(backend_health h) noexcept {
  switch (h) {
    case backend_health::up: return "up";
    case backend_health::down: return "down";
    default: return "unknown";
  }
}

health_board::health_board(const config::config& cfg) {
  for (const auto& b : cfg.backends) {
    states_.emplace_back(
        b.name, std::make_unique<std::atomic<std::uint8_t>>(static_cast<std::uint8_t>(backend_health::unknown)));
  }
}

void health_board::follow(const config::config& cfg, const std::vector<std::string>& restart) {
  std::vector<std::pair<std::string, std::unique_ptr<std::atomic<std::uint8_t>>>> next;
  std::unique_lock lock(mu_);
  for (const auto& b : cfg.backends) {
    const bool fresh = std::find(restart.begin(), restart.end(), b.name) != restart.end();
    const auto* kept = fresh ? nullptr : slot(b.name);
    const auto was =
        kept == nullptr ? static_cast<std::uint8_t>(backend_health::unknown) : kept->load(std::memory_order_acquire);
    next.emplace_back(b.name, std::make_unique<std::atomic<std::uint8_t>>(was));
  }
  states_ = std::move(next);
}

std::atomic<std::uint8_t>* health_board::slot(std::string_view backend) const noexcept {
  for (const auto& [name, state] : states_) {
    if (config::host_equals(name, backend)) return state.get();
  }
  return nullptr;
}

backend_health health_board::state(std::string_view backend) const noexcept {
  std::shared_lock lock(mu_);
  const auto* s = slot(backend);
  return s == nullptr ? backend_health::unknown : static_cast<backend_health>(s->load(std::memory_order_acquire));
}

backend_health health_board::set(std::string_view backend, backend_health h) noexcept {
  std::shared_lock lock(mu_);
  auto* s = slot(backend);
  if (s == nullptr) return backend_health::unknown;
  return static_cast<backend_health>(s->exchange(static_cast<std::uint8_t>(h), std::memory_order_acq_rel));
}

}  // namespace edgerelay::proxy
