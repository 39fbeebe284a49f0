// Rules compiled into CIDRs, host patterns and port ranges; decide() walks them first-match-wins without allocating.
#include "config/policy.hpp"

#include <algorithm>

#include "config/address.hpp"

namespace edgerelay::config {

namespace {

/// A `to` entry; for backend:NAME also the backend's portbase, looked up once at compile time.
struct compiled_target {
  target_pattern pattern;
  std::uint16_t portbase = 0;
};

/// backend:NAME reaches the backend's service, not its host: TCP portbase + 1 and UDP portbase.
bool is_backend_service_port(std::uint16_t portbase, std::uint16_t port, transport t) noexcept {
  if (t == transport::udp) {
    return port == portbase;
  }
  return static_cast<std::uint32_t>(port) == static_cast<std::uint32_t>(portbase) + 1;
}

struct compiled_rule {
  std::string name;
  bool allow = false;
  bool valid = true;  ///< false when an entry did not parse: such a rule never matches (never broadens)
  std::vector<cidr> from;
  std::vector<std::string> users;
  std::vector<std::string> listeners;
  std::vector<compiled_target> to;
  std::vector<std::string> from_text;  ///< as written, for explain()
  std::vector<std::string> to_text;
};

enum class tri : std::uint8_t { no, maybe, yes };
enum class failed : std::uint8_t { none, invalid, from, user, listener, to };

struct rule_result {
  tri result = tri::no;
  failed why = failed::none;
};

/// The request with its spellings settled: source folded, IP-literal hosts moved to `address`,
/// one trailing dot dropped from the host.
struct normalized {
  ip_address source;
  std::string_view user;
  std::string_view listener;
  std::string_view host;
  std::optional<ip_address> address;
  std::uint16_t port = 0;
  transport via = transport::tcp;
};

normalized normalize(const request& req) noexcept {
  normalized n;
  n.source = fold_v4_mapped(req.source);
  n.user = req.user;
  n.listener = req.listener;
  n.host = req.host;
  if (!n.host.empty() && n.host.back() == '.') {
    n.host.remove_suffix(1);
  }
  n.address = req.address;
  if (n.address) {
    n.address = fold_v4_mapped(*n.address);
  } else if (auto literal = parse_ip_literal(n.host)) {
    // A runtime that passes "10.0.0.1" as a host means the address: treat it as one.
    n.address = literal;
    n.host = {};
  }
  n.port = req.port;
  n.via = req.transport;
  return n;
}

tri match_to(const compiled_rule& r, const normalized& req) noexcept {
  if (r.to.empty()) {
    return tri::yes;
  }
  tri result = tri::no;
  for (const auto& t : r.to) {
    const target_pattern& p = t.pattern;
    if (!p.ports.contains(req.port)) {
      continue;
    }
    switch (p.kind) {
      case target_kind::any: return tri::yes;
      case target_kind::backend:
        if (!req.host.empty() && host_equals(req.host, p.name) &&
            is_backend_service_port(t.portbase, req.port, req.via)) {
          return tri::yes;
        }
        break;
      case target_kind::host:
        if (!req.host.empty() && host_equals(req.host, p.name)) {
          return tri::yes;
        }
        break;
      case target_kind::subdomains:
        if (host_is_subdomain_of(req.host, p.name)) {
          return tri::yes;
        }
        break;
      case target_kind::network:
        if (!req.address) {
          result = tri::maybe;  // the answer depends on what the name resolves to
        } else if (contains(p.network, *req.address)) {
          return tri::yes;
        }
        break;
    }
  }
  return result;
}

bool iequal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto l = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
           return l(x) == l(y);
         });
}

rule_result evaluate(const compiled_rule& r, const normalized& req) noexcept {
  if (!r.valid) {
    return {tri::no, failed::invalid};
  }
  if (!r.from.empty() &&
      std::none_of(r.from.begin(), r.from.end(), [&](const cidr& c) { return contains(c, req.source); })) {
    return {tri::no, failed::from};
  }
  // User names are credentials and compare exactly; an anonymous request never matches a users list.
  if (!r.users.empty() && (req.user.empty() || std::none_of(r.users.begin(), r.users.end(),
                                                            [&](const std::string& u) { return u == req.user; }))) {
    return {tri::no, failed::user};
  }
  if (!r.listeners.empty() && std::none_of(r.listeners.begin(), r.listeners.end(),
                                           [&](const std::string& l) { return iequal(l, req.listener); })) {
    return {tri::no, failed::listener};
  }
  const tri to = match_to(r, req);
  return {to, to == tri::no ? failed::to : failed::none};
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    out += (out.empty() ? "" : ", ") + i;
  }
  return out;
}

std::string describe_address(const ip_address& a) {
  return a.v6 ? "[" + to_string(a) + "]" : to_string(a);
}

std::string describe_target(const normalized& req) {
  std::string out;
  if (!req.host.empty()) {
    out = std::string(req.host) + ":" + std::to_string(req.port);
    if (req.address) {
      out += " (address " + to_string(*req.address) + ")";
    }
  } else if (req.address) {
    out = describe_address(*req.address) + ":" + std::to_string(req.port);
  } else {
    out = "(no host):" + std::to_string(req.port);
  }
  if (req.via == transport::udp) {
    out += " (udp)";
  }
  return out;
}

std::string describe_miss(const compiled_rule& r, failed why, const normalized& req) {
  switch (why) {
    case failed::invalid: return "the rule has an entry that does not parse, so it never matches";
    case failed::from: return "from " + join(r.from_text) + " does not contain " + to_string(req.source);
    case failed::user:
      if (req.user.empty()) {
        return "users " + join(r.users) + " needs an authenticated user, the request has none";
      }
      return "users " + join(r.users) + " does not include '" + std::string(req.user) + "'";
    case failed::listener:
      return "listeners " + join(r.listeners) + " does not include '" + std::string(req.listener) + "'";
    case failed::to: {
      std::string out = "to " + join(r.to_text) + " does not match " + describe_target(req);
      // The one surprising miss: the name is the backend's but the port is not its service.
      for (const auto& t : r.to) {
        if (t.pattern.kind == target_kind::backend && !req.host.empty() && host_equals(req.host, t.pattern.name)) {
          out += " (backend:" + t.pattern.name + " reaches only TCP port " + std::to_string(t.portbase + 1) +
                 ", its sessions at portbase + 1, and UDP port " + std::to_string(t.portbase) +
                 ", its datagrams at portbase; other ports and transports of " + t.pattern.name +
                 " need their own rule)";
          break;
        }
      }
      return out;
    }
    case failed::none: break;
  }
  return "matched";
}

}  // namespace

std::string_view to_string(transport t) noexcept {
  return t == transport::udp ? "udp" : "tcp";
}

struct policy::compiled {
  std::vector<compiled_rule> rules;
};

policy::policy(std::unique_ptr<compiled> c) : impl_(std::move(c)) {}
policy::policy(policy&&) noexcept = default;
policy& policy::operator=(policy&&) noexcept = default;
policy::~policy() = default;

policy policy::compile(const config& cfg) {
  auto c = std::make_unique<compiled>();
  c->rules.reserve(cfg.rules.size());
  for (const auto& r : cfg.rules) {
    compiled_rule out;
    out.name = r.name;
    out.allow = r.allow;
    out.users = r.users;
    out.listeners = r.listeners;
    out.from_text = r.from;
    out.to_text = r.to;
    for (const auto& f : r.from) {
      if (auto net = parse_cidr(f)) {
        out.from.push_back(*net);
      } else {
        out.valid = false;
      }
    }
    for (const auto& t : r.to) {
      auto p = parse_target_pattern(t);
      if (!p) {
        out.valid = false;
        continue;
      }
      compiled_target ct{std::move(*p), 0};
      if (ct.pattern.kind == target_kind::backend) {
        const auto b = std::find_if(cfg.backends.begin(), cfg.backends.end(),
                                    [&](const backend_config& bc) { return host_equals(bc.name, ct.pattern.name); });
        if (b == cfg.backends.end()) {
          out.valid = false;  // no portbase to grant: never broaden to every port
          continue;
        }
        ct.portbase = b->portbase;
      }
      out.to.push_back(std::move(ct));
    }
    c->rules.push_back(std::move(out));
  }
  return policy(std::move(c));
}

decision policy::decide(const request& req) const noexcept {
  if (impl_) {
    const normalized n = normalize(req);
    for (std::size_t i = 0; i < impl_->rules.size(); ++i) {
      const compiled_rule& r = impl_->rules[i];
      const rule_result res = evaluate(r, n);
      if (res.result == tri::no) {
        continue;
      }
      const verdict v = res.result == tri::maybe ? verdict::needs_address : r.allow ? verdict::allow : verdict::deny;
      return decision{v, static_cast<int>(i), r.name};
    }
  }
  return decision{verdict::deny, -1, "default"};
}

std::string policy::explain(const request& req) const {
  std::string out;
  const normalized n = normalize(req);
  const std::size_t count = impl_ ? impl_->rules.size() : 0;
  for (std::size_t i = 0; i < count; ++i) {
    const compiled_rule& r = impl_->rules[i];
    const rule_result res = evaluate(r, n);
    const std::string head = "rule " + std::to_string(i + 1) + " '" + r.name + "': ";
    if (res.result == tri::no) {
      out += head + "no match: " + describe_miss(r, res.why, n) + "\n";
      continue;
    }
    if (res.result == tri::maybe) {
      out += head + "depends on the address: to " + join(r.to_text) + " names networks and " + std::string(n.host) +
             " is not resolved yet\n";
      out += "decision: needs address (resolve " + std::string(n.host) + " and decide again for each address)\n";
      return out;
    }
    out += "decision: " + std::string(r.allow ? "allow" : "deny") + " by rule '" + r.name + "'\n";
    return out;
  }
  out += "decision: deny by default (no rule matched)\n";
  return out;
}

}  // namespace edgerelay::config
