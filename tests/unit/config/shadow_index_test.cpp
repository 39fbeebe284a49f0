// find_shadowed_rules() through its index against the pairwise check it replaces: for random rule
// sets, the same rules reported, each against the same (first) earlier rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "config/address.hpp"
#include "config/load.hpp"
#include "config/validate.hpp"

namespace edgerelay::config {
namespace {

// The pairwise check, as it was: every rule against every earlier rule, the first cover reported.
struct parsed {
  bool valid = true;
  std::vector<cidr> from;
  std::vector<target_pattern> to;
};

parsed parse_rule(const rule_config& r) {
  parsed out;
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

template <class T, class Covers>
bool all_covered(const std::vector<T>& outer, const std::vector<T>& inner, Covers one) {
  if (outer.empty()) {
    return true;
  }
  if (inner.empty()) {
    return false;
  }
  return std::all_of(inner.begin(), inner.end(), [&](const T& i) {
    return std::any_of(outer.begin(), outer.end(), [&](const T& o) { return one(o, i); });
  });
}

bool to_all_covered(const std::vector<target_pattern>& outer, const std::vector<target_pattern>& inner) {
  if (outer.empty() || std::any_of(outer.begin(), outer.end(), [](const target_pattern& p) {
        return p.kind == target_kind::any && p.ports.is_any();
      })) {
    return true;
  }
  return all_covered(outer, inner, [](const target_pattern& o, const target_pattern& i) {
    if (o.kind == target_kind::backend) {
      return i.kind == target_kind::backend && host_equals(o.name, i.name);
    }
    return covers(o, i);
  });
}

/// "rule NAME by EARLIER" for each shadowed rule, in rule order.
std::vector<std::string> pairwise_shadowed(const config& cfg) {
  std::vector<parsed> p;
  for (const auto& r : cfg.rules) {
    p.push_back(parse_rule(r));
  }
  std::vector<std::string> out;
  for (std::size_t j = 0; j < cfg.rules.size(); ++j) {
    if (!p[j].valid) {
      continue;
    }
    for (std::size_t i = 0; i < j; ++i) {
      const rule_config& a = cfg.rules[i];
      const rule_config& b = cfg.rules[j];
      if (p[i].valid &&
          all_covered(p[i].from, p[j].from, [](const cidr& o, const cidr& n) { return contains(o, n); }) &&
          all_covered(a.users, b.users, [](const std::string& o, const std::string& n) { return o == n; }) &&
          all_covered(a.listeners, b.listeners,
                      [](const std::string& o, const std::string& n) { return host_equals(o, n); }) &&
          to_all_covered(p[i].to, p[j].to)) {
        out.push_back(b.name + " by " + a.name);
        break;
      }
    }
  }
  return out;
}

std::vector<std::string> indexed_shadowed(const config& cfg) {
  std::vector<std::string> out;
  for (const diagnostic& d : find_shadowed_rules(cfg)) {
    // "rule 'B' can never match: the earlier rule 'A' (line N) ..."
    const auto q1 = d.message.find('\'');
    const auto q2 = d.message.find('\'', q1 + 1);
    const auto q3 = d.message.find('\'', q2 + 1);
    const auto q4 = d.message.find('\'', q3 + 1);
    out.push_back(d.message.substr(q1 + 1, q2 - q1 - 1) + " by " + d.message.substr(q3 + 1, q4 - q3 - 1));
  }
  return out;
}

const std::vector<std::string> from_pool = {"10.0.0.0/8",   "10.1.0.0/16",    "10.1.2.0/24",        "10.1.2.3",
                                            "0.0.0.0/0",    "2001:db8::/32",  "2001:db8:1::/48",    "::/0",
                                            "192.0.2.0/25", "192.0.2.128/25", "::ffff:10.1.0.0/112"};
const std::vector<std::string> to_pool = {"*",
                                          "*:443",
                                          "*:400-500",
                                          "a.example",
                                          "A.example:443",
                                          "*.example",
                                          "*.a.example",
                                          "*.Example:440-450",
                                          "b.a.example",
                                          "10.0.0.0/8",
                                          "10.1.0.0/16:443",
                                          "10.1.2.0/24:443",
                                          "[2001:db8::/32]",
                                          "[2001:db8:1::/48]:443",
                                          "backend:db",
                                          "db",
                                          "db:5002",
                                          "::/0",
                                          "0.0.0.0/0:443",
                                          "example"};
const std::vector<std::string> user_pool = {"alice", "bob", "Alice"};
const std::vector<std::string> listener_pool = {"edge", "EDGE", "door", "door."};

template <class T>
const T& pick(std::mt19937& rng, const std::vector<T>& pool) {
  return pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)];
}

std::vector<std::string> some(std::mt19937& rng, const std::vector<std::string>& pool, int most, double p_none) {
  std::vector<std::string> out;
  if (std::bernoulli_distribution(p_none)(rng)) {
    return out;
  }
  const int count = std::uniform_int_distribution<int>(1, most)(rng);
  for (int i = 0; i < count; ++i) {
    out.push_back(pick(rng, pool));
  }
  return out;
}

config random_rules(std::mt19937& rng, int count) {
  config cfg = default_config();
  cfg.rules.clear();
  for (int i = 0; i < count; ++i) {
    rule_config r;
    r.name = "r" + std::to_string(i);
    r.mark.line = i + 1;
    r.from = some(rng, from_pool, 2, 0.5);
    r.to = some(rng, to_pool, 3, 0.15);
    r.users = some(rng, user_pool, 2, 0.8);
    r.listeners = some(rng, listener_pool, 2, 0.8);
    cfg.rules.push_back(std::move(r));
  }
  return cfg;
}

TEST(ShadowIndex, ReportsWhatThePairwiseCheckReports) {
  std::mt19937 rng(1203);
  std::size_t reported = 0;
  for (int set = 0; set < 300; ++set) {
    const config cfg = random_rules(rng, std::uniform_int_distribution<int>(2, 40)(rng));
    const auto want = pairwise_shadowed(cfg);
    ASSERT_EQ(indexed_shadowed(cfg), want) << "rule set " << set;
    reported += want.size();
  }
  EXPECT_GT(reported, 300U) << "the random sets should shadow often enough to test something";
}

TEST(ShadowIndex, LargeListStaysFast) {
  // 50,000 distinct names, suffixes and networks, then a catch-all and a rule it shadows: the
  // pairwise check compared 1.25e9 pairs here.
  config cfg = default_config();
  cfg.rules.clear();
  for (int i = 0; i < 50'000; ++i) {
    rule_config r;
    r.name = "r" + std::to_string(i);
    r.mark.line = i + 1;
    r.to = {i % 3 == 0   ? "h" + std::to_string(i) + ".example"
            : i % 3 == 1 ? "*.s" + std::to_string(i) + ".example"
                         : "10." + std::to_string(i % 256) + "." + std::to_string(i / 256 % 256) + ".0/24"};
    cfg.rules.push_back(std::move(r));
  }
  rule_config dup = cfg.rules[3];
  dup.name = "again";
  cfg.rules.push_back(dup);
  rule_config sub;
  sub.name = "inside";
  sub.to = {"x.s4.example:443"};
  cfg.rules.push_back(sub);
  const auto start = std::chrono::steady_clock::now();
  const auto found = indexed_shadowed(cfg);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(found, (std::vector<std::string>{"again by r3", "inside by r4"}));
  EXPECT_LT(took, std::chrono::seconds(5));
}

}  // namespace
}  // namespace edgerelay::config
