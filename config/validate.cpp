// Shadowed-rule detection: a rule is dead when an earlier rule matches everything it matches.
#include "config/validate.hpp"

#include <algorithm>

#include "config/address.hpp"
#include "config/lookup_tables.hpp"

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

namespace {

/// host_equals() as a key: lower case, one trailing dot dropped.
std::string name_key(std::string_view name) {
  return normalize_host(name);
}

bool is_any_destination(const parsed_rule& p) {
  return p.to.empty() || std::any_of(p.to.begin(), p.to.end(), [](const target_pattern& t) {
           return t.kind == target_kind::any && t.ports.is_any();
         });
}

/// Earlier rules filed so that every rule that can cover a later one is in a list the later rule
/// looks up: by the first of from, users and listeners a rule has (for rules that reach any
/// destination), or by each `to` entry (for the others).
class coverer_index {
 public:
  void add(const rule_config& r, const parsed_rule& p, std::uint32_t index) {
    if (is_any_destination(p)) {
      if (!p.from.empty()) {
        for (const cidr& c : p.from) {
          from_.add(c, index);
        }
      } else if (!r.users.empty()) {
        for (const auto& u : r.users) {
          users_.add(u, index);
        }
      } else if (!r.listeners.empty()) {
        for (const auto& l : r.listeners) {
          listeners_.add(name_key(l), index);
        }
      } else {
        anything_.push_back(index);
      }
      return;
    }
    for (const target_pattern& t : p.to) {
      switch (t.kind) {
        case target_kind::host:
        case target_kind::backend: names_.add(name_key(t.name), index); break;
        case target_kind::subdomains: suffixes_.add(name_key(t.name), index); break;
        case target_kind::network: networks_.add(t.network, index); break;
        case target_kind::any: some_ports_.push_back(index); break;
      }
    }
  }

  void seal() {
    from_.seal();
    users_.seal();
    listeners_.seal();
    names_.seal();
    suffixes_.seal();
    networks_.seal();
  }

  /// Calls `f(rule_list)` with lists that hold every rule that may cover `r`.
  template <class F>
  void candidates(const rule_config& r, const parsed_rule& p, F&& f) const {
    // A coverer of any destination: its from (if any) contains all of r's, so r's first.
    if (!p.from.empty()) {
      from_.for_each_containing(p.from.front().base, p.from.front().prefix, f);
    }
    if (!r.users.empty()) {
      f(users_.find(r.users.front()));
    }
    if (!r.listeners.empty()) {
      f(listeners_.find(name_key(r.listeners.front())));
    }
    f(rule_list(anything_));
    if (p.to.empty()) {
      return;  // only a rule that reaches any destination covers one that does
    }
    // Otherwise one of its entries covers r's first entry.
    f(rule_list(some_ports_));
    const target_pattern& first = p.to.front();
    switch (first.kind) {
      case target_kind::host:
      case target_kind::backend:
      case target_kind::subdomains: {
        const std::string name = name_key(first.name);
        if (first.kind != target_kind::subdomains) {
          f(names_.find(name));
        } else {
          f(suffixes_.find(name));
        }
        for (std::size_t dot = name.find('.', 1); dot != std::string::npos && dot + 1 < name.size();
             dot = name.find('.', dot + 1)) {
          f(suffixes_.find(std::string_view(name).substr(dot + 1)));
        }
        break;
      }
      case target_kind::network: networks_.for_each_containing(first.network.base, first.network.prefix, f); break;
      case target_kind::any: break;
    }
  }

 private:
  prefix_table from_;
  name_table users_{false};
  name_table listeners_{false};
  std::vector<std::uint32_t> anything_;
  name_table names_{false};
  name_table suffixes_{false};
  prefix_table networks_;
  std::vector<std::uint32_t> some_ports_;
};

bool covers_rule(const rule_config& a, const parsed_rule& pa, const rule_config& b, const parsed_rule& pb) {
  return list_covers(pa.from, pb.from, [](const cidr& o, const cidr& n) { return contains(o, n); }) &&
         list_covers(a.users, b.users, [](const std::string& o, const std::string& n) { return o == n; }) &&
         list_covers(a.listeners, b.listeners, lower_equal) && to_covers(pa.to, pb.to);
}

/// How many earlier candidates one rule is compared with at most: keeps the check linear on lists
/// where thousands of rules name the same thing; past it a shadowed rule may go unreported.
constexpr std::size_t max_comparisons_per_rule = 512;

}  // namespace

std::vector<diagnostic> find_shadowed_rules(const config& cfg) {
  std::vector<diagnostic> out;
  std::vector<parsed_rule> parsed;
  parsed.reserve(cfg.rules.size());
  for (const auto& r : cfg.rules) {
    parsed.push_back(parse(r));
  }
  // Built in two passes over the same rules: each rule looks up only the earlier ones.
  coverer_index index;
  for (std::size_t i = 0; i < cfg.rules.size(); ++i) {
    if (parsed[i].valid) {
      index.add(cfg.rules[i], parsed[i], static_cast<std::uint32_t>(i));
    }
  }
  index.seal();
  std::vector<rule_list> lists;
  for (std::size_t j = 0; j < cfg.rules.size(); ++j) {
    if (!parsed[j].valid) {
      continue;
    }
    const rule_config& b = cfg.rules[j];
    lists.clear();
    index.candidates(b, parsed[j], [&](rule_list l) {
      if (!l.empty() && l.front() < j) {
        lists.push_back(l);
      }
    });
    // Merge the ascending lists, so the first earlier rule that covers b is the one reported.
    std::size_t compared = 0;
    std::uint32_t last = static_cast<std::uint32_t>(j);
    bool first_candidate = true;
    while (compared < max_comparisons_per_rule) {
      std::size_t pick = lists.size();
      for (std::size_t k = 0; k < lists.size(); ++k) {
        if (!lists[k].empty() && lists[k].front() < j &&
            (pick == lists.size() || lists[k].front() < lists[pick].front())) {
          pick = k;
        }
      }
      if (pick == lists.size()) {
        break;
      }
      const std::uint32_t i = lists[pick].front();
      lists[pick] = lists[pick].subspan(1);
      if (!first_candidate && i == last) {
        continue;  // listed twice
      }
      first_candidate = false;
      last = i;
      ++compared;
      const rule_config& a = cfg.rules[i];
      if (covers_rule(a, parsed[i], b, parsed[j])) {
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

namespace edgerelay::config {

std::vector<diagnostic> find_unseen_addresses(const config& cfg) {
  std::vector<diagnostic> out;
  const auto resolves_upstream = [&cfg](const std::string& via) {
    return std::any_of(cfg.upstreams.begin(), cfg.upstreams.end(), [&via](const upstream_config& u) {
      return lower_equal(u.name, via) && u.resolve == upstream_resolve::upstream;
    });
  };
  const rule_config* first_needing_address = nullptr;
  for (const auto& r : cfg.rules) {
    const parsed_rule p = parse(r);
    const bool networks_only = !p.to.empty() && std::all_of(p.to.begin(), p.to.end(), [](const target_pattern& t) {
      return t.kind == target_kind::network;
    });
    if (!r.via.empty() && resolves_upstream(r.via)) {
      if (networks_only) {
        out.push_back(diagnostic{severity::warning, r.mark,
                                 "rule '" + r.name + "' sends sessions via '" + r.via +
                                     "', which resolves names itself (resolve: upstream), but its to lists only "
                                     "networks: the gateway never sees the address of a name sent there, so requests "
                                     "by name are denied (requests by address still match)"});
      } else if (first_needing_address != nullptr) {
        out.push_back(diagnostic{severity::warning, r.mark,
                                 "rule '" + r.name + "' sends sessions via '" + r.via +
                                     "', which resolves names itself (resolve: upstream), but the earlier rule '" +
                                     first_needing_address->name +
                                     "' decides on addresses: requests by name that reach this rule are denied"});
      }
    }
    const bool names_networks =
        std::any_of(p.to.begin(), p.to.end(), [](const target_pattern& t) { return t.kind == target_kind::network; });
    if (names_networks && first_needing_address == nullptr) {
      first_needing_address = &r;
    }
  }
  return out;
}

}  // namespace edgerelay::config
