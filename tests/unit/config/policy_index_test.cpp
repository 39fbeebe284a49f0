// decide() through the rule index against explain()'s linear walk: for random rule sets and random
// requests, the same verdict by the same rule (first match wins, default deny, needs_address).
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/address.hpp"
#include "config/load.hpp"
#include "config/policy.hpp"

namespace edgerelay::config {
namespace {

// Pools with overlaps on purpose: nested networks, names and their suffixes, case and trailing-dot
// spellings, ports at range edges, backend service ports, entries that do not parse.
const std::vector<std::string> from_pool = {
    "10.0.0.0/8",      "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3",    "192.0.2.0/24",        "0.0.0.0/0", "2001:db8::/32",
    "2001:db8:1::/48", "::1",         "::/0",        "127.0.0.0/8", "::ffff:10.1.0.0/112", "bogus",     "10.1.2.3/16"};
const std::vector<std::string> to_pool = {"*",
                                          "*:443",
                                          "a.example",
                                          "A.Example:80",
                                          "*.example",
                                          "*.b.example:1000-2000",
                                          "b.a.example",
                                          "10.1.0.0/16",
                                          "10.1.2.0/24:443",
                                          "[2001:db8::/32]:22",
                                          "backend:db",
                                          "backend:nosuch",
                                          "[::1]",
                                          "db",
                                          "example:5002",
                                          "0.0.0.0/0:80",
                                          "::/0",
                                          "*.A.example",
                                          "192.0.2.7:0-1023",
                                          "c.b.example:1500",
                                          "not a target"};
const std::vector<std::string> user_pool = {"alice", "bob", "Alice"};
const std::vector<std::string> listener_pool = {"edge", "Door", "door"};

const std::vector<std::string> source_pool = {"10.1.2.3",        "10.1.9.9",    "10.200.0.1",    "192.0.2.7",
                                              "127.0.0.1",       "2001:db8::5", "2001:db8:1::9", "::1",
                                              "::ffff:10.1.2.3", "198.51.100.1"};
const std::vector<std::string> host_pool = {
    "",           "a.example", "A.EXAMPLE.",   "x.a.example",   "b.a.example", "b.example..",   "example",
    "db",         "DB.",       "10.1.2.3",     "[2001:db8::5]", "c.b.example", "x.c.b.example", ".example",
    "a..example", "example.",  "www.A.example"};
const std::vector<std::string> address_pool = {"10.1.2.3", "10.1.7.7",  "192.0.2.7",       "2001:db8::5",
                                               "::1",      "127.0.0.1", "::ffff:10.1.2.9", "203.0.113.5"};
const std::vector<std::uint16_t> port_pool = {0, 22, 80, 443, 1000, 1500, 2000, 2001, 5001, 5002, 65535};

template <class T>
const T& pick(std::mt19937& rng, const std::vector<T>& pool) {
  return pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)];
}

std::vector<std::string> some(std::mt19937& rng, const std::vector<std::string>& pool, int most) {
  std::vector<std::string> out;
  const int count = std::uniform_int_distribution<int>(0, most)(rng);
  for (int i = 0; i < count; ++i) {
    out.push_back(pick(rng, pool));
  }
  return out;
}

/// A specific entry of its own for rule `i` (a name, a suffix, a network), so that a large set is a
/// list like an imported blocklist rather than a few catch-alls that decide everything early.
std::string own_target(std::mt19937& rng, int i) {
  switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
    case 0: return "h" + std::to_string(i) + ".example";
    case 1: return "*.s" + std::to_string(i) + ".example";
    case 2: return "10." + std::to_string(i % 256) + "." + std::to_string(i % 7) + ".0/24";
    default: return "[2001:db8:" + std::to_string(i % 9) + "::/48]:" + std::to_string(i % 3 == 0 ? 443 : 22);
  }
}

/// `sparse`: rules name mostly entries of their own and rarely match everything.
config random_rules(std::mt19937& rng, int count, bool sparse) {
  config cfg = default_config();
  cfg.rules.clear();
  backend_config db;
  db.name = "db";
  db.host = "db.internal";
  db.portbase = 5001;
  cfg.backends.push_back(db);
  std::bernoulli_distribution often(0.5);
  std::bernoulli_distribution rarely(0.15);
  for (int i = 0; i < count; ++i) {
    rule_config r;
    r.name = "r" + std::to_string(i);
    r.allow = often(rng);
    r.from = rarely(rng) || often(rng) ? some(rng, from_pool, 2) : std::vector<std::string>{};
    r.to = some(rng, to_pool, 3);
    if (sparse) {
      std::erase_if(r.to, [](const std::string& t) { return t == "*" || t == "::/0" || t == "0.0.0.0/0:80"; });
      if (often(rng) || r.to.empty()) {
        r.to.push_back(own_target(rng, i));
      }
    }
    r.users = rarely(rng) ? some(rng, user_pool, 2) : std::vector<std::string>{};
    r.listeners = rarely(rng) ? some(rng, listener_pool, 2) : std::vector<std::string>{};
    cfg.rules.push_back(std::move(r));
  }
  return cfg;
}

/// The request as the linear walk decides it: verdict, rule number and name from explain().
struct oracle_decision {
  verdict result = verdict::deny;
  int rule_index = -1;
  std::string rule_name = "default";
};

oracle_decision linear_decision(const policy& pol, const request& req) {
  const std::string text = pol.explain(req);
  oracle_decision out;
  std::size_t misses = 0;
  for (std::size_t at = text.find("': no match: "); at != std::string::npos; at = text.find("': no match: ", at + 1)) {
    ++misses;
  }
  const std::size_t last = text.rfind("decision: ");
  const std::string line = text.substr(last);
  auto quoted = [&](std::size_t from) {
    const std::size_t open = line.find('\'', from);
    return line.substr(open + 1, line.find('\'', open + 1) - open - 1);
  };
  if (line.rfind("decision: deny by default", 0) == 0) {
    return out;
  }
  out.rule_index = static_cast<int>(misses);
  if (line.rfind("decision: needs address", 0) == 0) {
    out.result = verdict::needs_address;
    const std::size_t head = text.rfind("': depends on the address");
    const std::size_t rule_line = text.rfind("rule ", head);
    out.rule_name = text.substr(text.find('\'', rule_line) + 1, head - text.find('\'', rule_line) - 1);
    return out;
  }
  out.result = line.rfind("decision: allow", 0) == 0 ? verdict::allow : verdict::deny;
  out.rule_name = quoted(0);
  return out;
}

std::string describe(const request& req) {
  return "source " + to_string(req.source) + " user '" + std::string(req.user) + "' listener '" +
         std::string(req.listener) + "' host '" + std::string(req.host) + "' address " +
         (req.address ? to_string(*req.address) : std::string("(none)")) + " port " + std::to_string(req.port) +
         (req.transport == transport::udp ? " udp" : " tcp");
}

std::string describe(const config& cfg) {
  std::string out;
  for (const auto& r : cfg.rules) {
    out += r.name + (r.allow ? " allow" : " deny");
    auto list = [&](const char* what, const std::vector<std::string>& items) {
      if (!items.empty()) {
        out += std::string(" ") + what + ":";
        for (const auto& i : items) {
          out += " " + i;
        }
      }
    };
    list("from", r.from);
    list("to", r.to);
    list("users", r.users);
    list("listeners", r.listeners);
    out += "\n";
  }
  return out;
}

/// Runs `requests` random requests against a random set of `rules` rules; false at the first
/// difference (reported with the rules and the request).
bool indexed_equals_linear(std::mt19937& rng, int rules, int requests, bool sparse) {
  const config cfg = random_rules(rng, rules, sparse);
  const policy pol = policy::compile(cfg);
  std::bernoulli_distribution often(0.5);
  std::bernoulli_distribution rarely(0.2);
  for (int i = 0; i < requests; ++i) {
    request req;
    req.source = *parse_ip_address(pick(rng, source_pool));
    const std::string& user = rarely(rng) ? std::string() : pick(rng, user_pool);
    req.user = user;
    req.listener = pick(rng, listener_pool);
    if (rarely(rng)) {
      req.listener = "DOOR";
    }
    std::string host = pick(rng, host_pool);
    std::optional<ip_address> address;
    if (often(rng)) {
      address = *parse_ip_address(pick(rng, address_pool));
    }
    if (sparse && often(rng)) {
      // Names and addresses of the rules' own entries, so their lists are looked up.
      const int n = std::uniform_int_distribution<int>(0, rules - 1)(rng);
      const std::string label = std::to_string(n);
      switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
        case 0: host = "h" + label + ".example"; break;
        case 1: host = "x.s" + label + ".EXAMPLE"; break;
        case 2:
          address = *parse_ip_address("10." + std::to_string(n % 256) + "." + std::to_string(n % 7) + ".9");
          break;
        default: address = *parse_ip_address("2001:db8:" + std::to_string(n % 9) + "::1"); break;
      }
    }
    req.host = host;
    req.address = address;
    req.port = pick(rng, port_pool);
    req.transport = rarely(rng) ? transport::udp : transport::tcp;
    const decision got = pol.decide(req);
    const oracle_decision want = linear_decision(pol, req);
    const bool same =
        got.result == want.result && got.rule_index == want.rule_index && std::string(got.rule_name) == want.rule_name;
    if (!same) {
      ADD_FAILURE() << "indexed decide() differs from the linear walk for " << describe(req) << ": got verdict "
                    << static_cast<int>(got.result) << " rule " << got.rule_index << " '" << got.rule_name
                    << "', the walk says verdict " << static_cast<int>(want.result) << " rule " << want.rule_index
                    << " '" << want.rule_name << "'\nrules:\n"
                    << describe(cfg) << "explain:\n"
                    << pol.explain(req);
      return false;
    }
  }
  return true;
}

TEST(PolicyIndex, MatchesTheLinearWalkOnSmallRandomRuleSets) {
  std::mt19937 rng(20261203);
  for (int set = 0; set < 400; ++set) {
    const int rules = std::uniform_int_distribution<int>(1, 24)(rng);
    ASSERT_TRUE(indexed_equals_linear(rng, rules, 150, false)) << "rule set " << set;
  }
}

TEST(PolicyIndex, MatchesTheLinearWalkOnLargerRandomRuleSets) {
  std::mt19937 rng(7);
  for (int set = 0; set < 40; ++set) {
    const int rules = std::uniform_int_distribution<int>(30, 600)(rng);
    ASSERT_TRUE(indexed_equals_linear(rng, rules, 300, true)) << "rule set " << set;
  }
}

TEST(PolicyIndex, OracleReadsExplainAsTheWalkDecides) {
  // The oracle itself: a miss, a needs_address and a default deny, read back from explain().
  config cfg = default_config();
  cfg.rules.clear();
  rule_config a;
  a.name = "users-only";
  a.allow = true;
  a.users = {"alice"};
  rule_config b;
  b.name = "nets";
  b.to = {"10.0.0.0/8"};
  cfg.rules = {a, b};
  const policy pol = policy::compile(cfg);
  request req;
  req.source = *parse_ip_address("192.0.2.1");
  req.host = "a.example";
  const oracle_decision before = linear_decision(pol, req);
  EXPECT_EQ(before.result, verdict::needs_address);
  EXPECT_EQ(before.rule_index, 1);
  EXPECT_EQ(before.rule_name, "nets");
  req.address = *parse_ip_address("192.0.2.9");
  const oracle_decision after = linear_decision(pol, req);
  EXPECT_EQ(after.result, verdict::deny);
  EXPECT_EQ(after.rule_index, -1);
  req.user = "alice";
  const oracle_decision allowed = linear_decision(pol, req);
  EXPECT_EQ(allowed.result, verdict::allow);
  EXPECT_EQ(allowed.rule_index, 0);
  EXPECT_EQ(allowed.rule_name, "users-only");
}

}  // namespace
}  // namespace edgerelay::config
