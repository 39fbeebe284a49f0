// decide() truth table (two decision points, CIDR and port edges, wildcards, users, listeners) and explain().
#include <gtest/gtest.h>

#include <string>

#include "config/address.hpp"
#include "config/load.hpp"
#include "config/password.hpp"
#include "config/policy.hpp"

namespace edgerelay::config {
namespace {

/// A cheap but well-formed hash, so tests do not pay 150k PBKDF2 rounds per config.
const std::string& test_hash() {
  static const std::string hash = hash_password("secret", 1000);
  return hash;
}

/// Listeners edge and firewall, backend sql, users alice and bob, then `rules` (YAML list items).
std::string config_with_rules(const std::string& rules) {
  return "listeners:\n"
         "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http, socks5]}\n"
         "  - {name: firewall, bind: \"127.0.0.1:0\", protocols: [socks4]}\n"
         "backends:\n"
         "  - {name: sql, host: db.internal, portbase: 5001, kind: sql602}\n"
         "users:\n"
         "  - {name: alice, password: \"" +
         test_hash() +
         "\"}\n"
         "  - {name: bob, password: \"" +
         test_hash() +
         "\"}\n"
         "rules:\n" +
         (rules.empty() ? std::string("  []\n") : rules);
}

policy compile_rules(const std::string& rules) {
  const load_result loaded = load_config_text(config_with_rules(rules), "test.yaml");
  std::string diags;
  for (const auto& d : loaded.diagnostics) {
    diags += to_string(d) + "\n";
  }
  EXPECT_TRUE(loaded.value.has_value()) << diags;
  return policy::compile(loaded.value ? *loaded.value : default_config());
}

ip_address ip(const std::string& text) {
  auto a = parse_ip_address(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ip_address{});
}

struct decide_case {
  const char* name;
  const char* rules;  ///< YAML list items under `rules:`
  const char* source;
  const char* user;
  const char* listener;
  const char* host;     ///< "" when the client gave an address
  const char* address;  ///< "" before resolution
  std::uint16_t port;
  verdict expected;
  const char* rule;  ///< deciding rule name, "default" for default deny
};

// Names the case in CTest output instead of dumping its bytes.
void PrintTo(const decide_case& c, std::ostream* os) {
  *os << c.name;
}

constexpr verdict allow = verdict::allow;
constexpr verdict deny = verdict::deny;
constexpr verdict needs = verdict::needs_address;

#define R1(body) "  - {name: r1, " body "}\n"
#define R2(body) "  - {name: r2, " body "}\n"

const decide_case cases[] = {
    // from: IPv4 CIDR edges
    {"V4CidrInside", R1("action: allow, from: [10.1.0.0/16]"), "10.1.255.255", "", "edge", "", "192.0.2.1", 80, allow,
     "r1"},
    {"V4CidrLowEdge", R1("action: allow, from: [10.1.0.0/16]"), "10.1.0.0", "", "edge", "", "192.0.2.1", 80, allow,
     "r1"},
    {"V4CidrJustAbove", R1("action: allow, from: [10.1.0.0/16]"), "10.2.0.0", "", "edge", "", "192.0.2.1", 80, deny,
     "default"},
    {"V4CidrJustBelow", R1("action: allow, from: [10.1.0.0/16]"), "10.0.255.255", "", "edge", "", "192.0.2.1", 80, deny,
     "default"},
    {"V4Slash32Exact", R1("action: allow, from: [192.0.2.7/32]"), "192.0.2.7", "", "edge", "", "192.0.2.1", 80, allow,
     "r1"},
    {"V4Slash32Neighbour", R1("action: allow, from: [192.0.2.7/32]"), "192.0.2.8", "", "edge", "", "192.0.2.1", 80,
     deny, "default"},
    {"V4BareAddressIsSlash32", R1("action: allow, from: [192.0.2.7]"), "192.0.2.7", "", "edge", "", "192.0.2.1", 80,
     allow, "r1"},
    {"V4BareAddressNeighbour", R1("action: allow, from: [192.0.2.7]"), "192.0.2.6", "", "edge", "", "192.0.2.1", 80,
     deny, "default"},
    {"V4SlashZeroMatchesAll", R1("action: allow, from: [0.0.0.0/0]"), "203.0.113.9", "", "edge", "", "192.0.2.1", 80,
     allow, "r1"},
    {"V4SlashZeroNotV6", R1("action: allow, from: [0.0.0.0/0]"), "2001:db8::1", "", "edge", "", "192.0.2.1", 80, deny,
     "default"},
    {"V4OddPrefixTop", R1("action: allow, from: [10.0.0.0/9]"), "10.127.255.255", "", "edge", "", "192.0.2.1", 80,
     allow, "r1"},
    {"V4OddPrefixOutside", R1("action: allow, from: [10.0.0.0/9]"), "10.128.0.0", "", "edge", "", "192.0.2.1", 80, deny,
     "default"},
    // from: IPv6 CIDR edges
    {"V6CidrInside", R1("action: allow, from: [\"2001:db8::/32\"]"), "2001:db8:ffff:ffff::1", "", "edge", "",
     "192.0.2.1", 80, allow, "r1"},
    {"V6CidrOutside", R1("action: allow, from: [\"2001:db8::/32\"]"), "2001:db9::", "", "edge", "", "192.0.2.1", 80,
     deny, "default"},
    {"V6Slash128Exact", R1("action: allow, from: [\"::1/128\"]"), "::1", "", "edge", "", "192.0.2.1", 80, allow, "r1"},
    {"V6Slash128Neighbour", R1("action: allow, from: [\"::1/128\"]"), "::2", "", "edge", "", "192.0.2.1", 80, deny,
     "default"},
    {"V6BareAddressIsSlash128", R1("action: allow, from: [\"2001:db8::7\"]"), "2001:db8::7", "", "edge", "",
     "192.0.2.1", 80, allow, "r1"},
    {"V6SlashZeroAllV6", R1("action: allow, from: [\"::/0\"]"), "2001:db8::5", "", "edge", "", "192.0.2.1", 80, allow,
     "r1"},
    {"V6SlashZeroNotV4", R1("action: allow, from: [\"::/0\"]"), "10.0.0.1", "", "edge", "", "192.0.2.1", 80, deny,
     "default"},
    {"V6OddPrefixInside", R1("action: allow, from: [\"2001:db8:8000::/33\"]"), "2001:db8:ffff::", "", "edge", "",
     "192.0.2.1", 80, allow, "r1"},
    {"V6OddPrefixOutside", R1("action: allow, from: [\"2001:db8:8000::/33\"]"), "2001:db8:7fff::", "", "edge", "",
     "192.0.2.1", 80, deny, "default"},
    // IPv4-mapped IPv6 is folded to IPv4 everywhere
    {"MappedSourceFolded", R1("action: allow, from: [10.0.0.0/8]"), "::ffff:10.1.2.3", "", "edge", "", "192.0.2.1", 80,
     allow, "r1"},
    {"MappedCidrFolded", R1("action: allow, from: [\"::ffff:10.0.0.0/104\"]"), "10.9.9.9", "", "edge", "", "192.0.2.1",
     80, allow, "r1"},
    {"MappedCidrOutside", R1("action: allow, from: [\"::ffff:10.0.0.0/104\"]"), "11.0.0.1", "", "edge", "", "192.0.2.1",
     80, deny, "default"},
    {"MappedDestinationFolded", R1("action: allow, to: [10.0.0.0/8]"), "192.0.2.1", "", "edge", "", "::ffff:10.0.0.5",
     80, allow, "r1"},
    // to: ports
    {"PortRangeLowEdge", R1("action: allow, to: [\"10.2.0.0/24:5000-5010\"]"), "192.0.2.1", "", "edge", "", "10.2.0.1",
     5000, allow, "r1"},
    {"PortRangeHighEdge", R1("action: allow, to: [\"10.2.0.0/24:5000-5010\"]"), "192.0.2.1", "", "edge", "",
     "10.2.0.255", 5010, allow, "r1"},
    {"PortRangeBelow", R1("action: allow, to: [\"10.2.0.0/24:5000-5010\"]"), "192.0.2.1", "", "edge", "", "10.2.0.1",
     4999, deny, "default"},
    {"PortRangeAbove", R1("action: allow, to: [\"10.2.0.0/24:5000-5010\"]"), "192.0.2.1", "", "edge", "", "10.2.0.1",
     5011, deny, "default"},
    {"PortRangeOutsideNetwork", R1("action: allow, to: [\"10.2.0.0/24:5000-5010\"]"), "192.0.2.1", "", "edge", "",
     "10.2.1.1", 5005, deny, "default"},
    {"SinglePortMatch", R1("action: allow, to: [\"db.internal:5432\"]"), "192.0.2.1", "", "edge", "db.internal", "",
     5432, allow, "r1"},
    {"SinglePortMismatch", R1("action: allow, to: [\"db.internal:5432\"]"), "192.0.2.1", "", "edge", "db.internal", "",
     5433, deny, "default"},
    {"NoPortMeansPortOne", R1("action: allow, to: [db.internal]"), "192.0.2.1", "", "edge", "db.internal", "", 1, allow,
     "r1"},
    {"NoPortMeansPortMax", R1("action: allow, to: [db.internal]"), "192.0.2.1", "", "edge", "db.internal", "", 65535,
     allow, "r1"},
    {"AllV4OnPort25Denied", R1("action: deny, to: [\"0.0.0.0/0:25\"]") R2("action: allow"), "192.0.2.1", "", "edge", "",
     "198.51.100.1", 25, deny, "r1"},
    {"AllV4OtherPortFallsThrough", R1("action: deny, to: [\"0.0.0.0/0:25\"]") R2("action: allow"), "192.0.2.1", "",
     "edge", "", "198.51.100.1", 26, allow, "r2"},
    {"AllV4OnPort25NotV6", R1("action: deny, to: [\"0.0.0.0/0:25\"]") R2("action: allow"), "192.0.2.1", "", "edge", "",
     "2001:db8::25", 25, allow, "r2"},
    {"V6BracketedCidrPort", R1("action: allow, to: [\"[2001:db8::/32]:443\"]"), "192.0.2.1", "", "edge", "",
     "2001:db8::1", 443, allow, "r1"},
    {"V6BracketedCidrWrongPort", R1("action: allow, to: [\"[2001:db8::/32]:443\"]"), "192.0.2.1", "", "edge", "",
     "2001:db8::1", 80, deny, "default"},
    {"V6BracketedAddressPort", R1("action: allow, to: [\"[::1]:8080\"]"), "192.0.2.1", "", "edge", "", "::1", 8080,
     allow, "r1"},
    {"V6BracketedAddressOtherAddress", R1("action: allow, to: [\"[::1]:8080\"]"), "192.0.2.1", "", "edge", "", "::2",
     8080, deny, "default"},
    {"V6BracketedNoPort", R1("action: allow, to: [\"[ff01::1]\"]"), "192.0.2.1", "", "edge", "", "ff01::1", 9, allow,
     "r1"},
    {"V6BareCidrNoPort", R1("action: allow, to: [\"2001:db8::/32\"]"), "192.0.2.1", "", "edge", "", "2001:db8::9", 1,
     allow, "r1"},
    {"V6AllOnPort", R1("action: allow, to: [\"[::/0]:15903\"]"), "192.0.2.1", "", "edge", "", "2001:db8::9", 15903,
     allow, "r1"},
    // to: host names
    {"ExactHostCaseInsensitive", R1("action: allow, to: [db.internal]"), "192.0.2.1", "", "edge", "DB.Internal", "", 80,
     allow, "r1"},
    {"ExactHostTrailingDotRequest", R1("action: allow, to: [db.internal]"), "192.0.2.1", "", "edge", "db.internal.", "",
     80, allow, "r1"},
    {"ExactHostTrailingDotRule", R1("action: allow, to: [db.internal.]"), "192.0.2.1", "", "edge", "db.internal", "",
     80, allow, "r1"},
    {"ExactHostLongerName", R1("action: allow, to: [db.internal]"), "192.0.2.1", "", "edge", "db.internal.evil", "", 80,
     deny, "default"},
    {"ExactHostSubdomainNotMatched", R1("action: allow, to: [db.internal]"), "192.0.2.1", "", "edge", "x.db.internal",
     "", 80, deny, "default"},
    {"WildcardSubdomain", R1("action: allow, to: [\"*.corp.example:443\"]"), "192.0.2.1", "", "edge", "a.corp.example",
     "", 443, allow, "r1"},
    {"WildcardDeepSubdomain", R1("action: allow, to: [\"*.corp.example:443\"]"), "192.0.2.1", "", "edge",
     "x.y.corp.example", "", 443, allow, "r1"},
    {"WildcardNotTheSuffixItself", R1("action: allow, to: [\"*.corp.example:443\"]"), "192.0.2.1", "", "edge",
     "corp.example", "", 443, deny, "default"},
    {"WildcardNotLookalike", R1("action: allow, to: [\"*.corp.example:443\"]"), "192.0.2.1", "", "edge",
     "evilcorp.example", "", 443, deny, "default"},
    {"WildcardCaseAndDot", R1("action: allow, to: [\"*.corp.example:443\"]"), "192.0.2.1", "", "edge",
     "A.CORP.EXAMPLE.", "", 443, allow, "r1"},
    {"WildcardWrongPort", R1("action: allow, to: [\"*.corp.example:443\"]"), "192.0.2.1", "", "edge", "a.corp.example",
     "", 80, deny, "default"},
    {"StarMatchesAnyHost", R1("action: allow, to: [\"*\"]"), "192.0.2.1", "", "edge", "anything.example", "", 80, allow,
     "r1"},
    {"StarMatchesAddress", R1("action: allow, to: [\"*\"]"), "192.0.2.1", "", "edge", "", "192.0.2.99", 80, allow,
     "r1"},
    {"StarWithPortOtherPort", R1("action: allow, to: [\"*:443\"]"), "192.0.2.1", "", "edge", "a.example", "", 22, deny,
     "default"},
    {"EmptyToMatchesEverything", R1("action: allow"), "192.0.2.1", "", "edge", "a.example", "", 22, allow, "r1"},
    // to: backends
    {"BackendByName", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "sql", "", 5002, allow,
     "r1"},
    {"BackendByNameCase", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "SQL", "", 5002, allow,
     "r1"},
    {"BackendNotItsHostName", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "db.internal", "",
     5002, deny, "default"},
    {"BackendNotByAddress", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "", "10.9.0.1", 5002,
     deny, "default"},
    // backend:NAME is the backend's service (portbase 5001: TCP 5002, UDP 5001), not every port of its host;
    // these requests are TCP (PolicyBackendTransport has the UDP ones)
    {"BackendPortbaseIsNoTcpService", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "sql", "",
     5001, deny, "default"},
    {"BackendOtherPortDenied", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "sql", "", 5022,
     deny, "default"},
    {"BackendPortBelowPortbase", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "sql", "", 5000,
     deny, "default"},
    {"BackendPortAboveService", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "sql", "", 5003,
     deny, "default"},
    {"BackendOtherPortFallsThrough", R1("action: allow, to: [\"backend:sql\"]") R2("action: deny, to: [sql]"),
     "192.0.2.1", "", "edge", "sql", "", 22, deny, "r2"},
    {"BackendOtherPortNeedsOwnRule", R1("action: allow, to: [\"backend:sql\", \"sql:22\"]"), "192.0.2.1", "", "edge",
     "sql", "", 22, allow, "r1"},
    {"BackendServiceAfterResolution", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "sql",
     "10.9.0.1", 5002, allow, "r1"},
    {"BackendOtherPortAfterResolution", R1("action: allow, to: [\"backend:sql\"]"), "192.0.2.1", "", "edge", "sql",
     "10.9.0.1", 15922, deny, "default"},
    // users
    {"UserInList", R1("action: allow, users: [alice]"), "192.0.2.1", "alice", "edge", "a.example", "", 80, allow, "r1"},
    {"UserNotInList", R1("action: allow, users: [alice]"), "192.0.2.1", "bob", "edge", "a.example", "", 80, deny,
     "default"},
    {"AnonymousNotInList", R1("action: allow, users: [alice]"), "192.0.2.1", "", "edge", "a.example", "", 80, deny,
     "default"},
    {"UserNamesAreCaseSensitive", R1("action: allow, users: [alice]"), "192.0.2.1", "Alice", "edge", "a.example", "",
     80, deny, "default"},
    {"NoUsersMatchesAnonymous", R1("action: allow"), "192.0.2.1", "", "edge", "a.example", "", 80, allow, "r1"},
    {"NoUsersMatchesAnyUser", R1("action: allow"), "192.0.2.1", "bob", "edge", "a.example", "", 80, allow, "r1"},
    // listeners
    {"ListenerInList", R1("action: allow, listeners: [edge]"), "192.0.2.1", "", "edge", "a.example", "", 80, allow,
     "r1"},
    {"ListenerNotInList", R1("action: allow, listeners: [edge]"), "192.0.2.1", "", "firewall", "a.example", "", 80,
     deny, "default"},
    {"ListenerCaseInsensitive", R1("action: allow, listeners: [edge]"), "192.0.2.1", "", "EDGE", "a.example", "", 80,
     allow, "r1"},
    // order and default
    {"FirstMatchDenyWins", R1("action: deny, from: [10.0.0.0/8]") R2("action: allow"), "10.1.1.1", "", "edge",
     "a.example", "", 80, deny, "r1"},
    {"FirstMatchFallsThrough", R1("action: deny, from: [10.0.0.0/8]") R2("action: allow"), "192.0.2.1", "", "edge",
     "a.example", "", 80, allow, "r2"},
    {"FirstMatchAllowBeforeDeny", R1("action: allow, from: [10.0.0.0/8]") R2("action: deny"), "10.1.1.1", "", "edge",
     "a.example", "", 80, allow, "r1"},
    {"NoRulesDenies", "", "127.0.0.1", "", "edge", "a.example", "", 80, deny, "default"},
    {"NothingMatchesDenies", R1("action: allow, from: [10.0.0.0/8]") R2("action: allow, users: [bob]"), "192.0.2.1",
     "alice", "edge", "a.example", "", 80, deny, "default"},
    // the two decision points
    {"NeedsAddressBeforeResolution", R1("action: deny, to: [10.0.0.0/8]") R2("action: allow"), "192.0.2.1", "", "edge",
     "a.example", "", 80, needs, "r1"},
    {"NameResolvingIntoDeniedRange", R1("action: deny, to: [10.0.0.0/8]") R2("action: allow"), "192.0.2.1", "", "edge",
     "a.example", "10.1.2.3", 80, deny, "r1"},
    {"NameResolvingOutsideDeniedRange", R1("action: deny, to: [10.0.0.0/8]") R2("action: allow"), "192.0.2.1", "",
     "edge", "a.example", "93.184.216.34", 80, allow, "r2"},
    {"NameDecidesBeforeLaterCidrRule",
     R1("action: allow, to: [\"*.corp.example\"]") R2("action: deny, to: [10.0.0.0/8]"), "192.0.2.1", "", "edge",
     "a.corp.example", "", 80, allow, "r1"},
    {"CidrOnlyRuleRejectsDialOutside", R1("action: allow, to: [10.2.0.0/24]"), "192.0.2.1", "", "edge", "app.internal",
     "10.3.0.1", 80, deny, "default"},
    {"CidrOnlyRuleAllowsDialInside", R1("action: allow, to: [10.2.0.0/24]"), "192.0.2.1", "", "edge", "app.internal",
     "10.2.0.9", 80, allow, "r1"},
    {"PortRulesOutNetworkEarly", R1("action: deny, to: [\"10.0.0.0/8:22\"]") R2("action: allow"), "192.0.2.1", "",
     "edge", "x.example", "", 443, allow, "r2"},
    {"FailedSourceSkipsNetworkRule", R1("action: deny, from: [192.168.0.0/16], to: [10.0.0.0/8]") R2("action: allow"),
     "10.1.1.1", "", "edge", "x.example", "", 80, allow, "r2"},
    {"IpLiteralHostIsAnAddress", R1("action: deny, to: [10.0.0.0/8]") R2("action: allow"), "192.0.2.1", "", "edge",
     "10.1.2.3", "", 80, deny, "r1"},
    {"IpLiteralAddressNeverNeedsAddress", R1("action: deny, to: [10.0.0.0/8]") R2("action: allow"), "192.0.2.1", "",
     "edge", "", "172.16.0.1", 80, allow, "r2"},
    {"MixedRuleDecidesByName", R1("action: allow, to: [db.internal, 10.0.0.0/8]"), "192.0.2.1", "", "edge",
     "db.internal", "", 80, allow, "r1"},
    {"MixedRuleOtherNameNeedsAddress", R1("action: allow, to: [db.internal, 10.0.0.0/8]"), "192.0.2.1", "", "edge",
     "other.internal", "", 80, needs, "r1"},
    {"MixedRuleOtherNameResolvedInside", R1("action: allow, to: [db.internal, 10.0.0.0/8]"), "192.0.2.1", "", "edge",
     "other.internal", "10.0.0.1", 80, allow, "r1"},
    {"NameMatchKeepsAllowAfterResolution", R1("action: allow, to: [db.internal]") R2("action: deny"), "192.0.2.1", "",
     "edge", "db.internal", "203.0.113.5", 80, allow, "r1"},
    {"ResolvedAddressV6DeniedRange", R1("action: deny, to: [\"fc00::/7\"]") R2("action: allow"), "192.0.2.1", "",
     "edge", "a.example", "fd00::1", 80, deny, "r1"},
};

class PolicyDecide : public testing::TestWithParam<decide_case> {};

TEST_P(PolicyDecide, MatchesTable) {
  const decide_case& c = GetParam();
  const policy pol = compile_rules(c.rules);
  request req;
  req.source = ip(c.source);
  req.user = c.user;
  req.listener = c.listener;
  req.host = c.host;
  if (*c.address != '\0') {
    req.address = ip(c.address);
  }
  req.port = c.port;
  const decision d = pol.decide(req);
  EXPECT_EQ(d.result, c.expected) << pol.explain(req);
  EXPECT_EQ(d.rule_name, c.rule) << pol.explain(req);
  EXPECT_EQ(d.rule_index == -1, std::string_view(c.rule) == "default");
  if (c.address[0] != '\0') {
    EXPECT_NE(d.result, verdict::needs_address) << "never needs_address once the address is known";
  }
}

INSTANTIATE_TEST_SUITE_P(Table, PolicyDecide, testing::ValuesIn(cases),
                         [](const testing::TestParamInfo<decide_case>& row) { return std::string(row.param.name); });

TEST(PolicyDecide, TableHasAtLeastSixtyCases) {
  EXPECT_GE(std::size(cases), 60U);
}

TEST(PolicyDecide, DefaultConfigAllowsLoopbackOnly) {
  const policy pol = policy::compile(default_config());
  request req;
  req.host = "example.com";
  req.port = 443;
  req.source = ip("127.0.0.1");
  EXPECT_EQ(pol.decide(req).result, verdict::allow);
  EXPECT_EQ(pol.decide(req).rule_name, "loopback-clients");
  req.source = ip("::1");
  EXPECT_EQ(pol.decide(req).result, verdict::allow);
  req.source = ip("192.168.1.10");
  EXPECT_EQ(pol.decide(req).result, verdict::deny);
  EXPECT_EQ(pol.decide(req).rule_index, -1);
}

TEST(PolicyDecide, RuleIndexCountsFromZero) {
  const policy pol = compile_rules(R1("action: deny, from: [10.0.0.0/8]") R2("action: allow"));
  request req;
  req.source = ip("192.0.2.1");
  req.host = "a.example";
  EXPECT_EQ(pol.decide(req).rule_index, 1);
}

TEST(PolicyDecide, MovedFromPolicyDeniesByDefault) {
  policy pol = compile_rules(R1("action: allow"));
  policy other = std::move(pol);
  request req;
  req.source = ip("192.0.2.1");
  EXPECT_EQ(other.decide(req).result, verdict::allow);
  EXPECT_EQ(pol.decide(req).result, verdict::deny);  // NOLINT(bugprone-use-after-move): defined as default deny
}

TEST(PolicyDecide, UnparsableRuleNeverMatches) {
  config cfg = default_config();
  cfg.rules[0].from = {"not-a-cidr"};  // compile() is given an unvalidated config: never broaden
  const policy pol = policy::compile(cfg);
  request req;
  req.source = ip("127.0.0.1");
  EXPECT_EQ(pol.decide(req).result, verdict::deny);
}

TEST(PolicyDecide, RawMappedSourceBytesAreFolded) {
  const policy pol = compile_rules(R1("action: allow, from: [10.0.0.0/8]"));
  request req;
  req.source.v6 = true;  // as a runtime might build it from an AF_INET6 socket
  req.source.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  req.address = ip("192.0.2.1");
  EXPECT_EQ(pol.decide(req).result, verdict::allow);
}

TEST(PolicyExplain, ListsEachMissThenTheDecision) {
  const policy pol = compile_rules(
      R1("action: allow, from: [10.1.0.0/16, \"2001:db8::/32\"]")
      "  - {name: members, action: allow, users: [alice]}\n"
      "  - {name: door, action: allow, listeners: [firewall]}\n"
      "  - {name: web, action: allow, to: [\"*.corp.example:443\", \"10.2.0.0/24:5000-5010\"]}\n"
      "  - {name: rest, action: deny}\n");
  request req;
  req.source = ip("192.0.2.7");
  req.listener = "edge";
  req.user = "bob";
  req.host = "db.example";
  req.address = ip("192.0.2.50");
  req.port = 443;
  EXPECT_EQ(pol.explain(req),
            "rule 1 'r1': no match: from 10.1.0.0/16, 2001:db8::/32 does not contain 192.0.2.7\n"
            "rule 2 'members': no match: users alice does not include 'bob'\n"
            "rule 3 'door': no match: listeners firewall does not include 'edge'\n"
            "rule 4 'web': no match: to *.corp.example:443, 10.2.0.0/24:5000-5010 does not match db.example:443 "
            "(address 192.0.2.50)\n"
            "decision: deny by rule 'rest'\n");
}

TEST(PolicyExplain, AllowAndDefaultDeny) {
  const policy pol = compile_rules(R1("action: allow, users: [alice]"));
  request req;
  req.source = ip("2001:db8::7");
  req.user = "alice";
  req.address = ip("2001:db8::1");
  req.port = 22;
  EXPECT_EQ(pol.explain(req), "decision: allow by rule 'r1'\n");
  req.user = "";
  EXPECT_EQ(pol.explain(req),
            "rule 1 'r1': no match: users alice needs an authenticated user, the request has none\n"
            "decision: deny by default (no rule matched)\n");
}

TEST(PolicyExplain, BackendOtherPortSaysWhichPortsItReaches) {
  const policy pol = compile_rules(R1("action: allow, to: [\"backend:sql\"]"));
  request req;
  req.source = ip("192.0.2.1");
  req.host = "sql";
  req.port = 5022;
  EXPECT_EQ(pol.explain(req),
            "rule 1 'r1': no match: to backend:sql does not match sql:5022 (backend:sql reaches only TCP port 5002, "
            "its sessions at portbase + 1, and UDP port 5001, its datagrams at portbase; other ports and transports "
            "of sql need their own rule)\n"
            "decision: deny by default (no rule matched)\n");
}

TEST(PolicyExplain, BackendOtherTransportSaysWhichPortsItReaches) {
  const policy pol = compile_rules(R1("action: allow, to: [\"backend:sql\"]"));
  request req;
  req.source = ip("192.0.2.1");
  req.host = "sql";
  req.port = 5001;
  const std::string reaches =
      " (backend:sql reaches only TCP port 5002, its sessions at portbase + 1, and UDP port 5001, its datagrams at "
      "portbase; other ports and transports of sql need their own rule)\n"
      "decision: deny by default (no rule matched)\n";
  EXPECT_EQ(pol.explain(req), "rule 1 'r1': no match: to backend:sql does not match sql:5001" + reaches);
  req.port = 5002;
  req.transport = transport::udp;
  EXPECT_EQ(pol.explain(req), "rule 1 'r1': no match: to backend:sql does not match sql:5002 (udp)" + reaches);
  req.port = 5001;
  EXPECT_EQ(pol.explain(req), "decision: allow by rule 'r1'\n");
}

TEST(PolicyDecide, BackendWithoutDefinitionNeverMatches) {
  config cfg = default_config();
  cfg.rules[0].to = {"backend:nosuch"};  // compile() is given an unvalidated config: never broaden
  const policy pol = policy::compile(cfg);
  request req;
  req.source = ip("127.0.0.1");
  req.host = "nosuch";
  for (const std::uint16_t port : {0, 1, 5002, 65535}) {
    req.port = port;
    EXPECT_EQ(pol.decide(req).result, verdict::deny) << port;
  }
}

TEST(PolicyDecide, BackendPortbaseAtTopOfRange) {
  // portbase 65534: the service is 65535; the arithmetic must not wrap to port 0.
  config cfg = default_config();
  backend_config b;
  b.name = "top";
  b.host = "db.internal";
  b.portbase = 65534;
  cfg.backends.push_back(b);
  cfg.rules[0].to = {"backend:top"};
  const policy pol = policy::compile(cfg);
  request req;
  req.source = ip("127.0.0.1");
  req.host = "top";
  req.port = 65535;
  EXPECT_EQ(pol.decide(req).result, verdict::allow);
  req.port = 0;
  EXPECT_EQ(pol.decide(req).result, verdict::deny);
  req.port = 65534;
  EXPECT_EQ(pol.decide(req).result, verdict::deny);
  req.transport = transport::udp;
  EXPECT_EQ(pol.decide(req).result, verdict::allow);
  req.port = 65535;
  EXPECT_EQ(pol.decide(req).result, verdict::deny);
}

struct transport_case {
  const char* name;
  const char* rules;
  transport via;
  const char* host;
  const char* address;  ///< "" before resolution
  std::uint16_t port;
  verdict expected;
  const char* rule;
};

void PrintTo(const transport_case& c, std::ostream* os) {
  *os << c.name;
}

constexpr transport tcp = transport::tcp;
constexpr transport udp = transport::udp;

// backend sql has portbase 5001: its sessions are TCP 5002, its datagrams UDP 5001.
const transport_case transport_cases[] = {
    {"TcpSessionPort", R1("action: allow, to: [\"backend:sql\"]"), tcp, "sql", "", 5002, allow, "r1"},
    {"TcpToPortbase", R1("action: allow, to: [\"backend:sql\"]"), tcp, "sql", "", 5001, deny, "default"},
    {"UdpDatagramPort", R1("action: allow, to: [\"backend:sql\"]"), udp, "sql", "", 5001, allow, "r1"},
    {"UdpToSessionPort", R1("action: allow, to: [\"backend:sql\"]"), udp, "sql", "", 5002, deny, "default"},
    {"UdpOtherPort", R1("action: allow, to: [\"backend:sql\"]"), udp, "sql", "", 5022, deny, "default"},
    {"UdpAfterResolution", R1("action: allow, to: [\"backend:sql\"]"), udp, "sql", "10.9.0.1", 5001, allow, "r1"},
    {"UdpSessionPortAfterResolution", R1("action: allow, to: [\"backend:sql\"]"), udp, "sql", "10.9.0.1", 5002, deny,
     "default"},
    {"TcpPortbaseFallsThrough", R1("action: allow, to: [\"backend:sql\"]") R2("action: deny, to: [sql]"), tcp, "sql",
     "", 5001, deny, "r2"},
    {"TcpPortbaseNeedsOwnRule", R1("action: allow, to: [\"backend:sql\", \"sql:5001\"]"), tcp, "sql", "", 5001, allow,
     "r1"},
    {"DenyBackendCoversUdpPortbase", R1("action: deny, to: [\"backend:sql\"]") R2("action: allow"), udp, "sql", "",
     5001, deny, "r1"},
    {"DenyBackendLeavesUdpSessionPort", R1("action: deny, to: [\"backend:sql\"]") R2("action: allow"), udp, "sql", "",
     5002, allow, "r2"},
    // every other destination means both transports
    {"HostAnyPortUdp", R1("action: allow, to: [sql]"), udp, "sql", "", 5002, allow, "r1"},
    {"HostPortUdp", R1("action: allow, to: [\"sql:5001\"]"), udp, "sql", "", 5001, allow, "r1"},
    {"StarUdp", R1("action: allow, to: [\"*:53\"]"), udp, "dns.example", "", 53, allow, "r1"},
    {"NetworkUdp", R1("action: allow, to: [\"10.0.0.0/8:53\"]"), udp, "", "10.1.2.3", 53, allow, "r1"},
    {"NetworkUdpNeedsAddress", R1("action: allow, to: [\"10.0.0.0/8:53\"]"), udp, "dns.example", "", 53, needs, "r1"},
};

class PolicyBackendTransport : public testing::TestWithParam<transport_case> {};

TEST_P(PolicyBackendTransport, DecidesByTransport) {
  const transport_case& c = GetParam();
  const policy pol = compile_rules(c.rules);
  request req;
  req.source = ip("192.0.2.1");
  req.listener = "edge";
  req.host = c.host;
  if (*c.address != '\0') {
    req.address = ip(c.address);
  }
  req.port = c.port;
  req.transport = c.via;
  const decision d = pol.decide(req);
  EXPECT_EQ(d.result, c.expected) << pol.explain(req);
  EXPECT_EQ(d.rule_name, c.rule) << pol.explain(req);
}

INSTANTIATE_TEST_SUITE_P(Table, PolicyBackendTransport, testing::ValuesIn(transport_cases),
                         [](const testing::TestParamInfo<transport_case>& row) { return std::string(row.param.name); });

TEST(PolicyDecide, RequestsAreTcpUnlessTheySayUdp) {
  EXPECT_EQ(request{}.transport, transport::tcp);
  EXPECT_EQ(to_string(transport::tcp), "tcp");
  EXPECT_EQ(to_string(transport::udp), "udp");
}

TEST(PolicyExplain, NeedsAddress) {
  const policy pol = compile_rules(R1("action: deny, to: [10.0.0.0/8]") R2("action: allow"));
  request req;
  req.source = ip("192.0.2.1");
  req.host = "a.example";
  req.port = 80;
  EXPECT_EQ(pol.explain(req),
            "rule 1 'r1': depends on the address: to 10.0.0.0/8 names networks and a.example is not resolved yet\n"
            "decision: needs address (resolve a.example and decide again for each address)\n");
  req.address = ip("::ffff:10.0.0.9");
  EXPECT_EQ(pol.explain(req), "decision: deny by rule 'r1'\n");
  req.host = "";
  req.address = ip("2001:db8::1");
  EXPECT_EQ(pol.explain(req),
            "rule 1 'r1': no match: to 10.0.0.0/8 does not match [2001:db8::1]:80\n"
            "decision: allow by rule 'r2'\n");
}

}  // namespace
}  // namespace edgerelay::config
