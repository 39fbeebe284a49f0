// runtime_snapshot: everything a session reads from configuration, immutable once published.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "config/policy.hpp"

namespace boost::asio::ssl {
class context;
}

namespace edgerelay::proxy {

struct runtime_snapshot {
  config::config cfg;
  config::policy pol;
  std::uint64_t generation = 0;
  /// Built TLS contexts, index-parallel to cfg.listeners and cfg.backends; null where no `tls`.
  /// Built with the snapshot, so a reload swaps certificates together with the rules.
  std::vector<std::shared_ptr<boost::asio::ssl::context>> listener_tls;
  std::vector<std::shared_ptr<boost::asio::ssl::context>> backend_tls;
  /// Index-parallel to cfg.upstreams: the client context that verifies an https:// upstream.
  std::vector<std::shared_ptr<boost::asio::ssl::context>> upstream_tls;

  const config::listener_config* find_listener(std::string_view name) const noexcept;
  /// The backend named `name` (compared case-insensitively, as configs name it), or nullptr.
  const config::backend_config* find_backend(std::string_view name) const noexcept;
  /// The server context of `l` (which must point into cfg), or nullptr for a plain listener.
  boost::asio::ssl::context* tls_of(const config::listener_config& l) const noexcept;
  /// The client context for dialling `b` (which must point into cfg), or nullptr for plain TCP.
  boost::asio::ssl::context* tls_of(const config::backend_config& b) const noexcept;
  /// The client context for an https:// upstream `u` (which must point into cfg), or nullptr.
  boost::asio::ssl::context* tls_of(const config::upstream_config& u) const noexcept;
  /// The upstream named `name` (case-insensitively), or nullptr.
  const config::upstream_config* find_upstream(std::string_view name) const noexcept;
};

/// A snapshot, or the reasons it could not be built (each names the file and OpenSSL's reason).
struct snapshot_result {
  std::shared_ptr<const runtime_snapshot> snapshot;
  std::vector<std::string> errors;
};

/// Compiles a validated config into a snapshot: the policy, and every TLS context (reading the
/// certificate files). Runs on the control thread.
snapshot_result make_snapshot(config::config cfg, std::uint64_t generation);

}  // namespace edgerelay::proxy
