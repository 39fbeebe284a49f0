#include "proxy/outbound/gateway/client_setup.hpp"

#include <map>
#include <utility>

#include "proxy/outbound/gateway/polling_transport.hpp"
#include "proxy/outbound/gateway/route.hpp"
#include "proxy/outbound/gateway/socks5_transport.hpp"
#include "proxy/outbound/gateway/websocket_transport.hpp"
#include "tunnel/basic_auth.hpp"

namespace edgerelay::proxy::gateway {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

/// The service port of each backend the client config declares with a portbase.
std::map<std::string, std::uint16_t> backend_ports(const config::config& cfg) {
  std::map<std::string, std::uint16_t> out;
  for (const auto& b : cfg.backends) {
    if (b.portbase != 0) out.emplace(lower(b.name), static_cast<std::uint16_t>(b.portbase + 1));
  }
  return out;
}

}  // namespace

client_setup make_client_setup(const config::config& cfg,
                               const std::function<std::optional<std::string>(std::string_view)>& env) {
  client_setup out;
  if (!cfg.client) {
    out.errors.emplace_back("not a client config (no gateway)");
    return out;
  }
  const config::client_config& c = *cfg.client;
  const config::gateway_config& gw = c.gateway;

  std::string gateway_password;
  if (!gw.password_file.empty()) {
    std::string why;
    if (auto secret = config::read_secret_file(gw.password_file, &why)) {
      gateway_password = std::move(*secret);
    } else {
      out.errors.push_back("gateway password_file " + why);
    }
  }
  const config::effective_proxy proxy = config::proxy_for(c, env);
  if (!proxy.error.empty()) out.errors.push_back(proxy.error);
  std::shared_ptr<const proxy_authenticator> auth;
  if (proxy.proxy && !proxy.proxy->user.empty()) {
    std::string why;
    if (auto secret = config::read_secret_file(proxy.proxy->password_file, &why)) {
      auth = std::make_shared<basic_authenticator>(proxy.proxy->user, *secret);
    } else {
      out.errors.push_back("proxy password_file " + why);
    }
  }
  route_settings base;
  base.gateway_host = gw.host;
  base.gateway_port = gw.port;
  if (proxy.proxy) {
    base.kind = route_kind::connect;
    base.proxy_host = proxy.proxy->host;
    base.proxy_port = proxy.proxy->port;
    base.auth = auth;
  }
  if (gw.tls) {
    std::string why;
    base.tls = make_gateway_tls_context(*gw.tls, why);
    if (!base.tls) out.errors.push_back("gateway tls: " + why);
    base.server_name = gw.tls->server_name.empty() ? gw.host : gw.tls->server_name;
  }
  websocket_options ws;
  ws.path = gw.path;
  polling_options poll;
  poll.path = gw.path;
  std::vector<candidate> candidates;
  switch (gw.transport) {
    case config::gateway_transport::socks5: {
      for (const auto& l : cfg.listeners) {
        if (!l.forward.empty() && backend_ports(cfg).count(lower(l.forward)) == 0) {
          out.errors.push_back("listener '" + l.name + "' forwards to '" + l.forward +
                               "', which transport socks5 can only ask for by name and port: add it to backends "
                               "with the gateway's portbase (backends: [{name: " +
                               l.forward + ", host: " + l.forward + ", portbase: N}])");
        }
      }
      auto route = std::make_shared<tcp_route>(base);
      candidates.push_back({std::string("socks5 ") + (base.tls ? "inside TLS" : "plain") + ", " + route->describe(),
                            route, std::make_shared<socks5_transport>(gw.user, gateway_password, backend_ports(cfg))});
      break;
    }
    case config::gateway_transport::websocket: {
      // Through a proxy, a TLS gateway is reached by CONNECT; a plain one by a forwarded request
      // (absolute form), which proxies that refuse CONNECT still pass with Upgrade allowed.
      route_settings r = base;
      if (proxy.proxy && !base.tls) r.kind = route_kind::absolute;
      auto route = std::make_shared<tcp_route>(r);
      candidates.push_back({"websocket, " + route->describe(), route, std::make_shared<websocket_transport>(ws)});
      break;
    }
    case config::gateway_transport::automatic: {
      // WebSocket over CONNECT (+TLS), then, for a plain gateway behind a proxy, WebSocket as a
      // forwarded request, then polling on the last route: for proxies that refuse CONNECT and
      // strip Upgrade but forward plain requests.
      auto first = std::make_shared<tcp_route>(base);
      candidates.push_back({"websocket, " + first->describe(), first, std::make_shared<websocket_transport>(ws)});
      if (base.tls && proxy.proxy) {
        // A plain-HTTP fallback (forwarded WebSocket or polling) would carry the gateway's password
        // and the data in clear; a CONNECT that works already carries the WebSocket.
        out.notes.emplace_back(
            "auto: no plain-HTTP fallback for a TLS gateway behind a proxy (it would send credentials and data in "
            "clear); a gateway listener without TLS and transport polling cross a plain-HTTP-only proxy");
      } else if (proxy.proxy) {
        route_settings r = base;
        r.kind = route_kind::absolute;
        auto plain = std::make_shared<tcp_route>(r);
        candidates.push_back({"websocket, " + plain->describe(), plain, std::make_shared<websocket_transport>(ws)});
        candidates.push_back({"polling, " + plain->describe(), plain, std::make_shared<polling_transport>(poll)});
      } else {
        candidates.push_back({"polling, " + first->describe(), first, std::make_shared<polling_transport>(poll)});
      }
      break;
    }
    case config::gateway_transport::polling: {
      // Through a proxy, a plain gateway is reached by forwarded requests (absolute form), which a
      // proxy that passes only plain HTTP still forwards; a TLS one by CONNECT.
      route_settings r = base;
      if (proxy.proxy && !base.tls) r.kind = route_kind::absolute;
      auto route = std::make_shared<tcp_route>(r);
      candidates.push_back({"polling, " + route->describe(), route, std::make_shared<polling_transport>(poll)});
      break;
    }
  }
  if (proxy.proxy) {
    out.notes.push_back("proxy " + proxy.proxy->url + " (from " + proxy.source + ")" +
                        (auth ? ", Basic auth as " + proxy.proxy->user : ""));
  } else {
    out.notes.emplace_back("no proxy: the gateway is dialled directly");
  }
  for (const auto& cand : candidates) out.notes.push_back("tunnel: " + cand.name);
  if (!out.errors.empty()) return out;
  const std::string authorization =
      gw.user.empty() ? std::string() : tunnel::encode_basic_auth(gw.user, gateway_password);
  out.plan = std::make_unique<client_dial>(std::move(candidates), authorization);
  return out;
}

}  // namespace edgerelay::proxy::gateway
