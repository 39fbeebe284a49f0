// Shadowed-rule detection: a rule is dead when an earlier rule matches everything it matches.
#include "config/validate.hpp"

#include <algorithm>

#include "config/address.hpp"

namespace edgerelay::config {
namespace {

struct parsed_rule {
  bool valid = true;
  std::vector<cidr> from;
  std::vector<target_pattern> to;
};

parsed_rule parse(const rule_config& r) {
  parsed_rule out;
  for (const auto& f : r.from) {
    auto c = parse_cidr(f);
    out.valid = out.valid && c.has_value();
    if (c) {
      out.from.push_back(*c);
    }
  }
  for (const auto& t : r.to) {
    auto p = parse_target_pattern(t);
    out.valid = out.valid && p.has_value();
    if (p) {
      out.to.push_back(*p);
    }
  }
  return out;
}

bool lower_equal(const std::string& a, const std::string& b) {
  return host_equals(a, b);
}

/// An empty list means "anything"; otherwise every inner item must be covered by an outer one.
template <class T, class Covers>
bool list_covers(const std::vector<T>& outer, const std::vector<T>& inner, Covers covers_one) {
  if (outer.empty()) {
    return true;
  }
  if (inner.empty()) {
    // "anything" is covered only by an outer entry that itself covers anything.
    return false;
  }
  return std::all_of(inner.begin(), inner.end(), [&](const T& i) {
    return std::any_of(outer.begin(), outer.end(), [&](const T& o) { return covers_one(o, i); });
  });
}

bool to_covers(const std::vector<target_pattern>& outer, const std::vector<target_pattern>& inner) {
  const bool outer_any = outer.empty() || std::any_of(outer.begin(), outer.end(), [](const target_pattern& p) {
                           return p.kind == target_kind::any && p.ports.is_any();
                         });
  if (outer_any) {
    return true;
  }
  return list_covers(outer, inner, [](const target_pattern& o, const target_pattern& i) {
    // backend:NAME matches only the backend's service ports, while covers() treats it as the bare
    // name on every port; so it covers nothing but the same backend reference.
    if (o.kind == target_kind::backend) {
      return i.kind == target_kind::backend && host_equals(o.name, i.name);
    }
    return covers(o, i);
  });
}

}  // namespace

std::vector<diagnostic> find_shadowed_rules(const config& cfg) {
  std::vector<diagnostic> out;
  std::vector<parsed_rule> parsed;
  parsed.reserve(cfg.rules.size());
  for (const auto& r : cfg.rules) {
    parsed.push_back(parse(r));
  }
  for (std::size_t j = 0; j < cfg.rules.size(); ++j) {
    if (!parsed[j].valid) {
      continue;
    }
    for (std::size_t i = 0; i < j; ++i) {
      const rule_config& a = cfg.rules[i];
      const rule_config& b = cfg.rules[j];
      if (!parsed[i].valid) {
        continue;
      }
      const bool covered =
          list_covers(parsed[i].from, parsed[j].from, [](const cidr& o, const cidr& n) { return contains(o, n); }) &&
          list_covers(a.users, b.users, [](const std::string& o, const std::string& n) { return o == n; }) &&
          list_covers(a.listeners, b.listeners, lower_equal) && to_covers(parsed[i].to, parsed[j].to);
      if (covered) {
        out.push_back(diagnostic{severity::warning, b.mark,
                                 "rule '" + b.name + "' can never match: the earlier rule '" + a.name + "' (line " +
                                     std::to_string(a.mark.line) + ") matches every request it would match"});
        break;
      }
    }
  }
  return out;
}

namespace {

bool is_loopback(const endpoint_spec& e) {
  const auto a = parse_ip_address(e.host);
  if (!a) {
    return false;
  }
  if (!a->v6) {
    return a->bytes[0] == 127;
  }
  static const ip_address v6_loopback = *parse_ip_address("::1");
  return *a == v6_loopback;
}

bool every_address(const cidr& c) {
  return c.prefix == 0;
}

bool matches_any_source(const parsed_rule& p) {
  return p.from.empty() || std::any_of(p.from.begin(), p.from.end(), every_address);
}

bool matches_any_destination(const parsed_rule& p) {
  return p.to.empty() || std::any_of(p.to.begin(), p.to.end(), [](const target_pattern& t) {
           return t.kind == target_kind::any || (t.kind == target_kind::network && every_address(t.network));
         });
}

/// Clients outside the host can use it without proving who they are.
bool open_to_anonymous(const listener_config& l) {
  const bool certificate_required = l.tls && !l.tls->client_ca.empty() && l.tls->required;
  return l.forward.empty() && l.auth == auth_mode::none && !certificate_required && !is_loopback(l.bind);
}

std::string endpoint_text(const endpoint_spec& e) {
  const bool v6 = e.host.find(':') != std::string::npos;
  return (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port);
}

}  // namespace

std::vector<diagnostic> find_open_proxies(const config& cfg) {
  std::vector<diagnostic> out;
  std::vector<parsed_rule> parsed;
  parsed.reserve(cfg.rules.size());
  for (const auto& r : cfg.rules) {
    parsed.push_back(parse(r));
  }
  for (const auto& l : cfg.listeners) {
    if (!open_to_anonymous(l)) {
      continue;
    }
    for (std::size_t i = 0; i < cfg.rules.size(); ++i) {
      const rule_config& r = cfg.rules[i];
      const bool applies =
          r.listeners.empty() || std::any_of(r.listeners.begin(), r.listeners.end(),
                                             [&](const std::string& n) { return lower_equal(n, l.name); });
      if (!r.allow || !parsed[i].valid || !r.users.empty() || !applies || !matches_any_source(parsed[i]) ||
          !matches_any_destination(parsed[i])) {
        continue;
      }
      out.push_back(diagnostic{severity::warning, r.mark,
                               "rule '" + r.name + "' makes listener '" + l.name + "' (" + endpoint_text(l.bind) +
                                   ") an open proxy: it allows any source to any destination without users (add "
                                   "from, users or auth: password, or bind the listener to loopback)"});
      break;
    }
  }
  return out;
}

}  // namespace edgerelay::config
