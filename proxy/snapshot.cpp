// Snapshot construction.
#include "proxy/snapshot.hpp"

#include "config/address.hpp"

namespace edgerelay::proxy {

const config::listener_config* runtime_snapshot::find_listener(std::string_view name) const noexcept {
  for (const auto& l : cfg.listeners) {
    if (l.name == name) {
      return &l;
    }
  }
  return nullptr;
}

const config::backend_config* runtime_snapshot::find_backend(std::string_view name) const noexcept {
  if (name.empty()) {
    return nullptr;
  }
  for (const auto& b : cfg.backends) {
    if (config::host_equals(b.name, name)) {
      return &b;
    }
  }
  return nullptr;
}

std::shared_ptr<const runtime_snapshot> make_snapshot(config::config cfg, std::uint64_t generation) {
  auto pol = config::policy::compile(cfg);
  return std::make_shared<const runtime_snapshot>(runtime_snapshot{std::move(cfg), std::move(pol), generation});
}

}  // namespace edgerelay::proxy
