// check / explain / passwd for the command line, kept here so they are unit-testable without a process.
#include "config/commands.hpp"

#include <algorithm>

#include "config/address.hpp"
#include "config/duration.hpp"
#include "config/load.hpp"
#include "config/password.hpp"
#include "config/policy.hpp"
#include "config/validate.hpp"

namespace edgerelay::config {
namespace {

std::string plural(std::size_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

std::string endpoint_text(const endpoint_spec& e) {
  const bool v6 = e.host.find(':') != std::string::npos;
  return (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port);
}

std::string protocol_text(protocol p) {
  switch (p) {
    case protocol::socks5: return "socks5";
    case protocol::socks4: return "socks4";
    case protocol::http: return "http";
    case protocol::websocket: return "websocket";
    case protocol::polling: return "polling";
  }
  return "?";
}

std::string ip_text(const ip_address& a) {
  return to_string(a);
}

std::string join_names(const std::vector<std::string>& names, std::string_view sep) {
  std::string out;
  for (const auto& n : names) {
    out += (out.empty() ? "" : std::string(sep)) + n;
  }
  return out;
}

const upstream_config* find_upstream(const config& cfg, std::string_view name) {
  for (const auto& u : cfg.upstreams) {
    if (host_equals(u.name, name)) return &u;
  }
  return nullptr;
}

/// The hops of `u` in order: "partner -> corp"; a pool as "(a | b)". The config is acyclic.
std::string hops_text(const config& cfg, const upstream_config& u) {
  if (u.is_proxy()) return u.name;
  std::string out;
  const bool pool = !u.pool.empty();
  for (const auto& member : pool ? u.pool : u.chain) {
    const upstream_config* m = find_upstream(cfg, member);
    out += (out.empty() ? "" : pool ? " | " : " -> ") + (m != nullptr ? hops_text(cfg, *m) : member);
  }
  return pool ? "(" + out + ")" : out;
}

/// "route: direct" or "route: via both: partner -> corp" for the rule `d` names.
std::string route_line(const config& cfg, const decision& d) {
  // Configs without upstreams have one route: saying so on every explain is noise.
  if (d.result != verdict::allow || d.rule_index < 0 || cfg.upstreams.empty()) return {};
  const std::string& via = cfg.rules[static_cast<std::size_t>(d.rule_index)].via;
  if (via.empty()) return "route: direct\n";
  const upstream_config* u = find_upstream(cfg, via);
  if (u == nullptr) return "route: via " + via + "\n";
  std::string out = "route: via " + u->name + ": " + hops_text(cfg, *u);
  out += u->resolve == upstream_resolve::upstream ? " (the last hop resolves names)" : "";
  return out + "\n";
}

bool resolves_upstream(const config& cfg, const decision& d) {
  if (d.result != verdict::allow || d.rule_index < 0) return false;
  const upstream_config* u = find_upstream(cfg, cfg.rules[static_cast<std::size_t>(d.rule_index)].via);
  return u != nullptr && u->resolve == upstream_resolve::upstream;
}

}  // namespace

std::string summarize(const config& cfg) {
  std::string out = "config " + cfg.source + ": " + plural(cfg.listeners.size(), "listener") + ", " +
                    plural(cfg.backends.size(), "backend") + ", " + plural(cfg.users.size(), "user") + ", " +
                    plural(cfg.rules.size(), "rule") + ", " + plural(cfg.upstreams.size(), "upstream") + "\n";
  for (const auto& l : cfg.listeners) {
    out += "listener " + l.name + ": " + endpoint_text(l.bind);
    if (!l.forward.empty()) {
      out += " forward to " + l.forward;
    } else {
      out += " protocols ";
      for (std::size_t i = 0; i < l.protocols.size(); ++i) {
        out += (i == 0 ? "" : ", ") + protocol_text(l.protocols[i]);
      }
      out += std::string("; auth ") + (l.auth == auth_mode::password ? "password" : "none");
    }
    if (l.tls) {
      out += l.tls->client_ca.empty() ? "; tls" : "; tls with client certificates";
    }
    if (l.proxy_protocol) {
      out += "; proxy_protocol from " + std::to_string(l.proxy_protocol->from.size()) + " source(s)";
    }
    if (!l.sql602_tunnel.empty()) {
      out += "; sql602_tunnel " + l.sql602_tunnel;
    }
    if (l.udp_bind) {
      out += "; udp " + endpoint_text(*l.udp_bind);
    }
    if (l.socks5_bind) {
      out += "; socks5 bind";
    }
    out += "\n";
  }
  for (const auto& b : cfg.backends) {
    out += "backend " + b.name + ": " + b.host + " portbase " + std::to_string(b.portbase) + " kind " +
           (b.kind == backend_kind::sql602 ? "sql602" : "tcp");
    if (!b.egress.empty()) {
      out += "; " + plural(b.egress.size(), "egress range");
    }
    if (b.health_check) {
      out += "; health check every " + format_duration(b.health_check->interval);
    }
    out += "\n";
  }
  if (!cfg.users.empty()) {
    out += "users:";
    for (const auto& u : cfg.users) {
      out += " " + u.name;
    }
    out += "\n";
  }
  for (std::size_t i = 0; i < cfg.rules.size(); ++i) {
    const auto& r = cfg.rules[i];
    out += "rule " + std::to_string(i + 1) + " " + r.name + ": " + (r.allow ? "allow" : "deny");
    if (!r.via.empty()) {
      out += " via " + r.via;
    }
    out += "\n";
  }
  for (const auto& u : cfg.upstreams) {
    out += "upstream " + u.name + ": ";
    if (!u.chain.empty()) {
      out += "chain " + join_names(u.chain, " -> ");
    } else if (!u.pool.empty()) {
      out += "pool " + join_names(u.pool, ", ") + " (fail_after " + std::to_string(u.fail_after) + ", set_aside " +
             format_duration(u.set_aside) + ")";
    } else {
      out += u.url;
      if (!u.user.empty()) {
        out += "; user " + u.user + (u.password_source.empty() ? "" : ", password from " + u.password_source);
      }
    }
    if (u.resolve == upstream_resolve::upstream) {
      out += "; resolve upstream";
    }
    out += "\n";
  }
  out += "workers: " + (cfg.workers == 0 ? std::string("auto") : std::to_string(cfg.workers)) + "\n";
  return out;
}

command_result check_command(const std::string& path) {
  return check_command(load_config_file(path));
}

command_result check_command(const load_result& loaded) {
  command_result r;
  std::vector<diagnostic> findings = loaded.diagnostics;
  if (loaded.value) {
    // Only check asks: an open proxy may be intended, so starting the gateway stays quiet about it.
    const auto open = find_open_proxies(*loaded.value);
    findings.insert(findings.end(), open.begin(), open.end());
    const auto unseen = find_unseen_addresses(*loaded.value);
    findings.insert(findings.end(), unseen.begin(), unseen.end());
    std::stable_sort(findings.begin(), findings.end(), [](const diagnostic& a, const diagnostic& b) {
      return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    });
  }
  for (const auto& d : findings) {
    r.err += to_string(d) + "\n";
  }
  if (!loaded.value) {
    r.exit_code = exit_config_error;
    return r;
  }
  r.out = summarize(*loaded.value) + "OK\n";
  return r;
}

command_result explain_command(const std::string& config_path, std::string_view from, std::string_view to,
                               std::string_view user, std::string_view listener, const resolve_function& resolve,
                               std::string_view transport_name) {
  command_result r;
  if (transport_name != "tcp" && transport_name != "udp") {
    r.exit_code = exit_usage;
    r.err = "edgerelay explain: --transport '" + std::string(transport_name) + "': expected tcp or udp\n";
    return r;
  }
  const transport via = transport_name == "udp" ? transport::udp : transport::tcp;
  const auto source = parse_ip_literal(from);
  if (!source) {
    r.exit_code = exit_usage;
    r.err = "edgerelay explain: --from '" + std::string(from) + "' is not an IP address\n";
    return r;
  }
  std::string why;
  const auto target = parse_host_port(to, &why);
  if (!target) {
    r.exit_code = exit_usage;
    r.err = "edgerelay explain: --to '" + std::string(to) + "': " + why + " (expected HOST:PORT)\n";
    return r;
  }
  config cfg;
  if (config_path.empty()) {
    cfg = default_config();
  } else {
    load_result loaded = load_config_file(config_path);
    for (const auto& d : loaded.diagnostics) {
      r.err += to_string(d) + "\n";
    }
    if (!loaded.value) {
      r.exit_code = exit_config_error;
      return r;
    }
    cfg = std::move(*loaded.value);
  }
  const policy pol = policy::compile(cfg);

  request req;
  req.source = *source;
  req.user = user;
  req.listener = listener;
  req.port = target->port;
  req.transport = via;
  const std::string host = normalize_host(target->host);
  if (auto literal = parse_ip_address(target->host)) {
    req.address = literal;
  } else {
    req.host = host;
  }
  r.out = "request: from " + ip_text(*source) + " to " + std::string(to) +
          (user.empty() ? std::string() : " user '" + std::string(user) + "'") +
          (listener.empty() ? std::string() : " listener '" + std::string(listener) + "'") +
          (via == transport::udp ? " over udp" : "") + "\n";
  const decision first = pol.decide(req);
  if (req.address) {
    r.out += pol.explain(req) + route_line(cfg, first);
    r.exit_code = first.result == verdict::allow ? exit_ok : exit_denied;
    return r;
  }
  r.out += "before resolving " + host + ":\n" + pol.explain(req);
  if (first.result == verdict::deny) {
    r.exit_code = exit_denied;
    return r;
  }
  if (first.result == verdict::allow && resolves_upstream(cfg, first)) {
    r.out += route_line(cfg, first) + "(not resolved here: the upstream resolves " + host + ")\n";
    r.exit_code = exit_ok;
    return r;
  }
  if (!resolve) {
    r.out += route_line(cfg, first) + "(not resolved: each address the gateway dials is checked again)\n";
    r.exit_code = first.result == verdict::allow ? exit_ok : exit_undecided;
    return r;
  }
  const std::vector<ip_address> addresses = resolve(host);
  if (addresses.empty()) {
    r.out += host + " does not resolve: the gateway would answer host unreachable\n";
    r.exit_code = exit_denied;
    return r;
  }
  bool any_allowed = false;
  for (const auto& a : addresses) {
    req.address = a;
    r.out += "address " + ip_text(a) + ":\n" + pol.explain(req);
    const decision d = pol.decide(req);
    if (d.result == verdict::allow && first.result == verdict::needs_address && resolves_upstream(cfg, d)) {
      // The upstream would resolve the name again: the address the rules saw is not what it dials.
      r.out += route_line(cfg, d) + "denied: the rules needed the address, which the upstream resolves itself\n";
      continue;
    }
    r.out += route_line(cfg, d);
    any_allowed = any_allowed || d.result == verdict::allow;
  }
  r.exit_code = any_allowed ? exit_ok : exit_denied;
  return r;
}

command_result passwd_command(std::string_view input) {
  command_result r;
  std::string_view line = input.substr(0, input.find('\n'));
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.empty()) {
    r.exit_code = exit_config_error;
    r.err = "edgerelay passwd: no password on stdin (type it and press Enter, or pipe it in)\n";
    return r;
  }
  r.out = hash_password(line) + "\n";
  return r;
}

}  // namespace edgerelay::config
