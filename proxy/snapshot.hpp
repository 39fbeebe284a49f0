// runtime_snapshot: everything a session reads from configuration, immutable once published.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/model.hpp"
#include "config/policy.hpp"

namespace edgerelay::proxy {

struct runtime_snapshot {
  config::config cfg;
  config::policy pol;
  std::uint64_t generation = 0;

  const config::listener_config* find_listener(std::string_view name) const noexcept;
  /// The backend named `name` (compared case-insensitively, as configs name it), or nullptr.
  const config::backend_config* find_backend(std::string_view name) const noexcept;
};

/// Compiles a validated config into a snapshot (policy compilation happens here, on the control thread).
std::shared_ptr<const runtime_snapshot> make_snapshot(config::config cfg, std::uint64_t generation);

}  // namespace edgerelay::proxy
