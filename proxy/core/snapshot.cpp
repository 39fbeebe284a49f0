// Snapshot construction.
#include "proxy/core/snapshot.hpp"

#include <boost/asio/ssl/context.hpp>

#include "config/address.hpp"
#include "proxy/observe/log.hpp"
#include "tunnel/tls/tls_context.hpp"

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

boost::asio::ssl::context* runtime_snapshot::tls_of(const config::listener_config& l) const noexcept {
  const auto i = static_cast<std::size_t>(&l - cfg.listeners.data());
  return i < listener_tls.size() ? listener_tls[i].get() : nullptr;
}

boost::asio::ssl::context* runtime_snapshot::tls_of(const config::backend_config& b) const noexcept {
  const auto i = static_cast<std::size_t>(&b - cfg.backends.data());
  return i < backend_tls.size() ? backend_tls[i].get() : nullptr;
}

boost::asio::ssl::context* runtime_snapshot::tls_of(const config::upstream_config& u) const noexcept {
  const auto i = static_cast<std::size_t>(&u - cfg.upstreams.data());
  return i < upstream_tls.size() ? upstream_tls[i].get() : nullptr;
}

const config::upstream_config* runtime_snapshot::find_upstream(std::string_view name) const noexcept {
  for (const auto& u : cfg.upstreams) {
    if (config::host_equals(u.name, name)) return &u;
  }
  return nullptr;
}

namespace {

bool speaks_http(const config::listener_config& l) {
  const auto speaks = [&l](config::protocol p) {
    return std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end();
  };
  return speaks(config::protocol::http) || speaks(config::protocol::websocket) || speaks(config::protocol::polling);
}

}  // namespace

snapshot_result make_snapshot(config::config cfg, std::uint64_t generation) {
  snapshot_result out;
  std::vector<std::shared_ptr<boost::asio::ssl::context>> listener_tls;
  std::vector<std::shared_ptr<boost::asio::ssl::context>> backend_tls;
  for (const auto& l : cfg.listeners) {
    auto& slot = listener_tls.emplace_back();
    if (!l.tls) continue;
    auto built = tunnel::make_server_context(*l.tls, speaks_http(l));
    if (built.context) {
      slot = std::move(built.context);
    } else {
      out.errors.push_back(concat("listener '", l.name, "': tls: ", built.error));
    }
  }
  for (const auto& b : cfg.backends) {
    auto& slot = backend_tls.emplace_back();
    if (!b.tls) continue;
    auto built = tunnel::make_client_context(*b.tls);
    if (built.context) {
      slot = std::move(built.context);
    } else {
      out.errors.push_back(concat("backend '", b.name, "': tls: ", built.error));
    }
  }
  std::vector<std::shared_ptr<boost::asio::ssl::context>> upstream_tls;
  for (const auto& u : cfg.upstreams) {
    auto& slot = upstream_tls.emplace_back();
    if (!u.is_proxy() || u.scheme != config::upstream_scheme::https) continue;
    auto built = tunnel::make_client_context(u.tls.value_or(config::backend_tls{}));
    if (built.context) {
      slot = std::move(built.context);
    } else {
      out.errors.push_back(concat("upstream '", u.name, "': tls: ", built.error));
    }
  }
  if (!out.errors.empty()) {
    return out;
  }
  auto pol = config::policy::compile(cfg);
  out.snapshot = std::make_shared<const runtime_snapshot>(
      runtime_snapshot{std::move(cfg), std::move(pol), generation, std::move(listener_tls), std::move(backend_tls),
                       std::move(upstream_tls)});
  return out;
}

}  // namespace edgerelay::proxy
