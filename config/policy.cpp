// Rules compiled into CIDRs, host patterns and port ranges, and indexed by what they name, so that
// decide() evaluates only the rules that can match a request (first match wins) without allocating.
#include "config/policy.hpp"

#include <algorithm>
#include <limits>

#include "config/address.hpp"
#include "config/lookup_tables.hpp"

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
  std::string from_text;  ///< as written, joined with ", ", for explain()
  std::string to_text;
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
  std::size_t size = 0;
  for (const auto& i : items) {
    size += i.size() + 2;
  }
  std::string out;
  out.reserve(size);
  for (const auto& i : items) {
    if (!out.empty()) {
      out += ", ";
    }
    out += i;
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
    case failed::from: return "from " + r.from_text + " does not contain " + to_string(req.source);
    case failed::user:
      if (req.user.empty()) {
        return "users " + join(r.users) + " needs an authenticated user, the request has none";
      }
      return "users " + join(r.users) + " does not include '" + std::string(req.user) + "'";
    case failed::listener:
      return "listeners " + join(r.listeners) + " does not include '" + std::string(req.listener) + "'";
    case failed::to: {
      std::string out = "to " + r.to_text + " does not match " + describe_target(req);
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

namespace {

/// Rules filed by the first condition they have among from, users and listeners, or else in
/// `rest`. A rule can match a request only if the request finds it here: its source is in one of
/// the rule's `from` networks, its user is one of the rule's users, or its listener one of the
/// rule's listeners.
struct condition_index {
  prefix_table from;
  name_table users{false};     ///< exact: user names are credentials
  name_table listeners{true};  ///< case-insensitive, as evaluate() compares them
  std::vector<std::uint32_t> rest;

  void add(const compiled_rule& r, std::uint32_t index) {
    if (!r.from.empty()) {
      for (const cidr& c : r.from) {
        from.add(c, index);
      }
    } else if (!r.users.empty()) {
      for (const auto& u : r.users) {
        users.add(u, index);
      }
    } else if (!r.listeners.empty()) {
      for (const auto& l : r.listeners) {
        listeners.add(l, index);
      }
    } else {
      rest.push_back(index);
    }
  }

  void seal() {
    from.seal();
    users.seal();
    listeners.seal();
    rest.shrink_to_fit();
  }

  template <class Visit>
  void candidates(const normalized& req, Visit&& visit) const {
    from.for_each_containing(req.source, 128, visit);
    if (!req.user.empty()) {
      visit(users.find(req.user));
    }
    visit(listeners.find(req.listener));
    visit(rule_list(rest));
  }
};

/// Every rule that can match a request is in at least one list these return for it, so the lowest
/// matching rule among them is the lowest matching rule of all (first match wins).
struct rule_index {
  /// Rules whose `to` is empty or has a "*" entry: filed by their other conditions.
  condition_index any_destination;
  /// Of the others, every host and backend name, every *.suffix (by suffix), every network.
  name_table names{true};
  name_table suffixes{true};
  prefix_table networks;
  /// Rules with a network entry, by their other conditions: before resolution each may answer
  /// needs_address, whatever network it names.
  condition_index unresolved;

  void add(const compiled_rule& r, std::uint32_t index) {
    if (!r.valid) {
      return;  // never matches
    }
    const bool any = r.to.empty() || std::any_of(r.to.begin(), r.to.end(), [](const compiled_target& t) {
                       return t.pattern.kind == target_kind::any;
                     });
    if (any) {
      any_destination.add(r, index);
      return;
    }
    bool has_network = false;
    for (const compiled_target& t : r.to) {
      switch (t.pattern.kind) {
        case target_kind::backend:
        case target_kind::host: names.add(t.pattern.name, index); break;
        case target_kind::subdomains: suffixes.add(t.pattern.name, index); break;
        case target_kind::network:
          networks.add(t.pattern.network, index);
          has_network = true;
          break;
        case target_kind::any: break;
      }
    }
    if (has_network) {
      unresolved.add(r, index);
    }
  }

  void seal() {
    any_destination.seal();
    names.seal();
    suffixes.seal();
    networks.seal();
    unresolved.seal();
  }

  template <class Visit>
  void candidates(const normalized& req, Visit&& visit) const {
    any_destination.candidates(req, visit);
    // host_equals() and host_is_subdomain_of() each ignore one more trailing dot.
    std::string_view host = req.host;
    if (!host.empty() && host.back() == '.') {
      host.remove_suffix(1);
    }
    if (!host.empty()) {
      visit(names.find(host));
      // Every proper suffix after a dot that has a label before it: "a.b.c" looks up "b.c" and "c".
      for (std::size_t dot = host.find('.', 1); dot != std::string_view::npos && dot + 1 < host.size();
           dot = host.find('.', dot + 1)) {
        visit(suffixes.find(host.substr(dot + 1)));
      }
    }
    if (req.address) {
      networks.for_each_containing(*req.address, 128, visit);
    } else {
      unresolved.candidates(req, visit);
    }
  }
};

}  // namespace

struct policy::compiled {
  std::vector<compiled_rule> rules;
  rule_index index;
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
    out.from_text = join(r.from);
    out.to_text = join(r.to);
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
    c->index.add(out, static_cast<std::uint32_t>(c->rules.size()));
    c->rules.push_back(std::move(out));
  }
  c->index.seal();
  return policy(std::move(c));
}

decision policy::decide(const request& req) const noexcept {
  if (!impl_) {
    return decision{verdict::deny, -1, "default"};
  }
  const normalized n = normalize(req);
  constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
  std::uint32_t best = none;
  tri best_result = tri::no;
  // Each list is ascending: its first rule that matches is its best, and rules past the best
  // found so far cannot win.
  auto visit = [&](rule_list rules) {
    for (const std::uint32_t i : rules) {
      if (i >= best) {
        return;
      }
      const rule_result res = evaluate(impl_->rules[i], n);
      if (res.result != tri::no) {
        best = i;
        best_result = res.result;
        return;
      }
    }
  };
  impl_->index.candidates(n, visit);
  if (best == none) {
    return decision{verdict::deny, -1, "default"};
  }
  const compiled_rule& r = impl_->rules[best];
  const verdict v = best_result == tri::maybe ? verdict::needs_address : r.allow ? verdict::allow : verdict::deny;
  return decision{v, static_cast<int>(best), r.name};
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
      out += head + "depends on the address: to " + r.to_text + " names networks and " + std::string(n.host) +
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
