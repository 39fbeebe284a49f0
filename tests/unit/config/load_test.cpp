// Config loading: values land in the model, and every problem is an exact "file:line:col: message".
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <unistd.h>

#include "config/load.hpp"
#include "config/password.hpp"

namespace edgerelay::config {
namespace {

const std::string& test_hash() {
  static const std::string hash = hash_password("secret", 1000);
  return hash;
}

std::vector<std::string> diagnostics_of(const std::string& yaml) {
  const load_result r = load_config_text(yaml, "test.yaml");
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics) {
    out.push_back(to_string(d));
  }
  const bool has_error = std::any_of(r.diagnostics.begin(), r.diagnostics.end(),
                                     [](const diagnostic& d) { return d.level == severity::error; });
  EXPECT_EQ(r.value.has_value(), !has_error) << "value is set exactly when there is no error";
  return out;
}

using lines = std::vector<std::string>;

/// A valid head to which tests append the section under test.
const char* const minimal =
    "listeners:\n"
    "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http]}\n"
    "rules:\n"
    "  - {name: all, action: allow}\n";

TEST(ConfigErrors, UnknownKeyNamesFileLineColumnAndAllowedKeys) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - name: edge\n"
                           "    bnd: \"0.0.0.0:80\"\n"
                           "    protocols: [http]\n"
                           "rules: [{name: all, action: allow, form: [10.0.0.0/8]}]\n"),
            (lines{"test.yaml:2:5: listener 'edge' needs a bind address (\"host:port\")",
                   "test.yaml:3:5: unknown key 'bnd' in listener (expected one of: name, bind, protocols, auth, tls, "
                   "proxy_protocol, forward, sql602_tunnel, fallback, udp_bind, max_sessions, socks5_bind, "
                   "websocket_path, polling_idle)",
                   "test.yaml:5:36: unknown key 'form' in rule (expected one of: name, action, from, to, users, "
                   "listeners, via)"}));
}

TEST(ConfigSocks5Bind, OffByDefaultOnWithTheKeyAndItsTimeout) {
  const load_result r = load_config_text(
      "listeners:\n"
      "  - {name: plain, bind: \"127.0.0.1:0\", protocols: [socks5]}\n"
      "  - {name: ftp, bind: \"127.0.0.1:0\", protocols: [socks5, http], socks5_bind: true}\n"
      "rules:\n"
      "  - {name: all, action: allow}\n"
      "limits: {bind_timeout: 90s}\n",
      "test.yaml");
  ASSERT_TRUE(r.value.has_value());
  EXPECT_FALSE(r.value->listeners.at(0).socks5_bind);
  EXPECT_TRUE(r.value->listeners.at(1).socks5_bind);
  EXPECT_EQ(r.value->limits.bind_timeout, std::chrono::seconds(90));
  const load_result defaults = load_config_text(minimal, "test.yaml");
  ASSERT_TRUE(defaults.value.has_value());
  EXPECT_EQ(defaults.value->limits.bind_timeout, std::chrono::seconds(60));
}

TEST(ConfigSocks5Bind, NeedsSocks5ABooleanAndAPositiveTimeout) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: web, bind: \"127.0.0.1:0\", protocols: [http], socks5_bind: true}\n"
                           "  - {name: odd, bind: \"127.0.0.1:0\", protocols: [socks5], socks5_bind: maybe}\n"
                           "rules:\n"
                           "  - {name: all, action: allow}\n"
                           "limits: {bind_timeout: 0s}\n"),
            (lines{"test.yaml:2:70: listener 'web' has socks5_bind, which needs protocol socks5",
                   "test.yaml:3:72: bad value 'maybe' for socks5_bind (expected true or false)",
                   "test.yaml:6:24: bad duration '0s' for bind_timeout (must be greater than zero)"}));
}

TEST(ConfigErrors, ProxyProtocolNeedsTheBalancersAddresses) {
  const auto with = [](const std::string& value) {
    return diagnostics_of(
        "listeners:\n"
        "  - name: edge\n"
        "    bind: \"127.0.0.1:0\"\n"
        "    protocols: [socks5]\n"
        "    proxy_protocol: " +
        value +
        "\n"
        "rules:\n"
        "  - {name: all, action: allow}\n");
  };
  EXPECT_EQ(with("true"), (lines{"test.yaml:5:21: expected a map for proxy_protocol (keys: from), like {from: "
                                 "[10.0.0.5/32]}: the load balancers' addresses, whose connections start with a PROXY "
                                 "header"}));
  EXPECT_EQ(with("{}"), (lines{"test.yaml:5:21: proxy_protocol needs from (the load balancers' addresses, like "
                               "[10.0.0.5/32])"}));
  EXPECT_EQ(with("{from: []}"),
            (lines{"test.yaml:5:28: empty list for proxy_protocol from (name the load balancers' addresses)"}));
  EXPECT_EQ(with("{from: [10.0.0.5/8]}"), (lines{"test.yaml:5:29: bad CIDR '10.0.0.5/8' in proxy_protocol from: host "
                                                 "bits are set (did you mean 10.0.0.0/8?)"}));
  EXPECT_EQ(with("{from: [10.0.0.5], to: x}"),
            (lines{"test.yaml:5:40: unknown key 'to' in proxy_protocol (expected one of: from)"}));
}

TEST(ConfigErrors, SendProxyTakesV2) {
  EXPECT_EQ(
      diagnostics_of(std::string(minimal) + "backends:\n  - {name: b, host: 10.0.0.1, portbase: 79, send_proxy: v1}\n"),
      (lines{"test.yaml:6:57: bad value 'v1' for send_proxy (expected one of: v2)"}));
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limit: {max_sessions: 5}\n"),
            (lines{"test.yaml:5:1: unknown key 'limit' in config (expected one of: listeners, backends, users, rules, "
                   "limits, admin, log, reload, upstreams, workers, user, group, allow_root, takeover_socket)"}));
}

TEST(ConfigErrors, BadDurationsAreAllReported) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits:\n"
                                                  "  handshake_timeout: 10x\n"
                                                  "  idle_timeout: 5\n"
                                                  "  connect_timeout: 0s\n"),
            (lines{"test.yaml:6:22: bad duration '10x' for handshake_timeout (expected a whole number with unit ms, s "
                   "or m, e.g. 250ms, 10s, 5m)",
                   "test.yaml:7:17: bad duration '5' for idle_timeout (expected a whole number with unit ms, s or m, "
                   "e.g. 250ms, 10s, 5m)",
                   "test.yaml:8:20: bad duration '0s' for connect_timeout (must be greater than zero)"}));
}

TEST(ConfigErrors, BadPorts) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - name: edge\n"
                           "    bind: \"127.0.0.1:70000\"\n"
                           "    protocols: [http]\n"
                           "    udp_bind: \"::1:53\"\n"
                           "backends:\n"
                           "  - {name: b, host: db.internal, portbase: 65535}\n"
                           "rules: [{name: all, action: allow}]\n"),
            (lines{"test.yaml:3:11: bad bind '127.0.0.1:70000': port '70000' must be a number 0-65535 (expected "
                   "\"host:port\" or \"[v6]:port\" with a literal IP address)",
                   "test.yaml:5:15: bad udp_bind '::1:53': an IPv6 address needs brackets before a port, as in "
                   "[::1]:1080 (expected \"host:port\" or \"[v6]:port\" with a literal IP address)",
                   "test.yaml:7:44: bad value '65535' for portbase (expected a whole number 0-65534)"}));
}

TEST(ConfigErrors, BadCidrsAndDestinations) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "  - name: r\n"
                                                  "    action: allow\n"
                                                  "    from:\n"
                                                  "      - 10.0.0.0/33\n"
                                                  "      - 10.1.2.3/16\n"
                                                  "    to: [\"db.internal:http\", \"backend:\"]\n"),
            (lines{"test.yaml:8:9: bad CIDR '10.0.0.0/33' in from: prefix length must be 0-32 for IPv4",
                   "test.yaml:9:9: bad CIDR '10.1.2.3/16' in from: host bits are set (did you mean 10.1.0.0/16?)",
                   "test.yaml:10:10: bad destination 'db.internal:http' in to: port 'http' must be a number 0-65535 "
                   "or a range like 5000-5010 (expected backend:NAME, host[:ports], *.suffix[:ports], CIDR[:ports] or "
                   "[v6]:ports)",
                   "test.yaml:10:30: bad destination 'backend:' in to: expected a backend name after 'backend:' "
                   "(expected backend:NAME, host[:ports], *.suffix[:ports], CIDR[:ports] or [v6]:ports)"}));
}

TEST(ConfigErrors, DuplicateNames) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http]}\n"
                           "  - {name: Edge, bind: \"127.0.0.1:0\", protocols: [socks5]}\n"
                           "backends:\n"
                           "  - {name: sql, host: a.internal, portbase: 5001}\n"
                           "  - {name: sql, host: b.internal, portbase: 5001}\n"
                           "rules:\n"
                           "  - {name: all, action: allow}\n"
                           "  - {name: all, action: deny}\n"),
            (lines{"test.yaml:3:12: duplicate listener name 'Edge' (first defined at 2:12)",
                   "test.yaml:6:12: duplicate backend name 'sql' (first defined at 5:12)",
                   "test.yaml:9:12: duplicate rule name 'all' (first defined at 8:12)"}));
}

TEST(ConfigErrors, UnknownReferences) {
  EXPECT_EQ(
      diagnostics_of(
          "listeners:\n"
          "  - {name: door, bind: \"127.0.0.1:0\", forward: sqll}\n"
          "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http], fallback: web}\n"
          "backends:\n"
          "  - {name: sql, host: db.internal, portbase: 5001}\n"
          "rules:\n"
          "  - {name: r, action: allow, to: [\"backend:sq\"], users: [carol], listeners: [dor], via: corp}\n"),
      (lines{"test.yaml:2:48: unknown backend 'sqll' in forward of listener 'door' (known backends: sql)",
             "test.yaml:3:68: unknown backend 'web' in fallback (404 or a backend) of listener 'edge' (known "
             "backends: sql)",
             "test.yaml:7:35: unknown backend 'sq' in to of rule 'r' (known backends: sql)",
             "test.yaml:7:58: unknown user 'carol' in users of rule 'r' (no users are defined); certificate identities "
             "can be named when a listener has tls client_ca",
             "test.yaml:7:78: unknown listener 'dor' in listeners of rule 'r' (known listeners: door, edge)",
             "test.yaml:7:89: unknown upstream 'corp' in via of rule 'r' (no upstreams are defined)"}));
}

TEST(ConfigErrors, RuleMayNameCertificateIdentitiesWhenAListenerHasClientCa) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http], tls: {cert: a.pem, key: a.key, "
                           "client_ca: ca.pem}}\n"
                           "rules:\n"
                           "  - {name: r, action: allow, users: [alice]}\n"),
            lines{});
}

TEST(ConfigErrors, PlainTextPasswordRefusedWithoutQuotingIt) {
  const lines got = diagnostics_of(std::string(minimal) +
                                   "users:\n"
                                   "  - {name: alice, password: hunter2}\n");
  EXPECT_EQ(got, (lines{"test.yaml:6:29: password of user 'alice' is not a hash: plain-text passwords are refused; "
                        "expected a hash of the form pbkdf2-sha256$<iterations>$<salt>$<hash> as printed by "
                        "`edgerelay passwd`"}));
  for (const auto& line : got) {
    EXPECT_EQ(line.find("hunter2"), std::string::npos);
  }
}

TEST(ConfigErrors, HashWithTooManyIterationsIsRefused) {
  // Ten million iterations is seconds of CPU per login: a hash must not be able to ask for that.
  std::string slow = test_hash();
  slow.replace(slow.find("$1000$"), 6, "$10000000$");
  EXPECT_EQ(diagnostics_of(std::string(minimal) +
                           "users:\n"
                           "  - {name: alice, password: \"" +
                           slow + "\"}\n"),
            (lines{"test.yaml:6:29: password of user 'alice' is not a usable hash: the iteration count of the hash "
                   "must be 1000-1000000"}));
}

TEST(ConfigErrors, ForwardAndProtocolsExcludeEachOther) {
  EXPECT_EQ(
      diagnostics_of("listeners:\n"
                     "  - {name: door, bind: \"127.0.0.1:0\", forward: sql, protocols: [http]}\n"
                     "  - {name: bare, bind: \"127.0.0.1:0\"}\n"
                     "  - {name: none, bind: \"127.0.0.1:0\", protocols: []}\n"
                     "  - {name: odd, bind: \"127.0.0.1:0\", protocols: [socks5, gopher, socks5]}\n"
                     "backends:\n"
                     "  - {name: sql, host: db.internal, portbase: 5001}\n"
                     "rules: [{name: all, action: allow}]\n"),
      (lines{"test.yaml:2:64: listener 'door' has forward, so it takes no protocols (sessions go to backend "
             "'sql' without a handshake)",
             "test.yaml:3:5: listener 'bare' needs protocols (one or more of: socks5, socks4, http, websocket, "
             "polling) or forward",
             "test.yaml:4:50: listener 'none' needs at least one protocol (socks5, socks4, http, websocket, polling) "
             "or forward",
             "test.yaml:5:58: unknown protocol 'gopher' (expected one of: socks5, socks4, http, websocket, polling)",
             "test.yaml:5:66: protocol 'socks5' listed twice"}));
}

TEST(ConfigErrors, BadValuesOfEveryKind) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "log: {level: verbose, access: json}\n"
                                                  "workers: many\n"
                                                  "reload: {recheck_sessions: maybe}\n"
                                                  "limits: {max_sessions: -1}\n"
                                                  "upstreams: [{name: corp, url: \"ftp://proxy:21\"}]\n"
                                                  "admin: {bind: localhost}\n"),
            (lines{"test.yaml:5:14: bad value 'verbose' for log level (expected one of: debug, info, warn, error)",
                   "test.yaml:6:10: bad value 'many' for workers (expected auto or a whole number 1-1024)",
                   "test.yaml:7:28: bad value 'maybe' for recheck_sessions (expected true or false)",
                   "test.yaml:8:24: bad value '-1' for max_sessions (expected a whole number 1-10000000)",
                   "test.yaml:9:31: bad upstream url 'ftp://proxy:21' (unknown scheme 'ftp'; expected socks5://, "
                   "socks4a://, http:// or "
                   "https://host:port)",
                   "test.yaml:10:15: bad admin bind 'localhost': missing ':port' (expected \"host:port\" or "
                   "\"[v6]:port\" with a literal IP address)"}));
}

TEST(ConfigErrors, TakeoverSocketIsAnAbsoluteShortPath) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "takeover_socket: run/x.sock\n"),
            (lines{"test.yaml:5:18: bad value 'run/x.sock' for takeover_socket (expected an absolute path of at most "
                   "107 bytes)"}));
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "takeover_socket: /" + std::string(107, 'x') + "\n").size(), 1U);
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "takeover_socket: [a]\n").size(), 1U);
  EXPECT_TRUE(diagnostics_of(std::string(minimal) + "takeover_socket: /run/edgerelay/takeover.sock\n").empty());
}

TEST(ConfigErrors, WrongShapes) {
  EXPECT_EQ(diagnostics_of("listeners: {name: edge}\n"
                           "rules:\n"
                           "  - name: [a, b]\n"
                           "    action:\n"
                           "  - just-a-string\n"),
            (lines{"test.yaml:1:1: no listeners defined (expected at least one entry under listeners)",
                   "test.yaml:1:12: expected a list of listeners",
                   "test.yaml:3:11: expected a single value for rule name (expected a name of letters, digits, '-', "
                   "'_' or '.')",
                   "test.yaml:4:5: missing value for action (expected one of: allow, deny)",
                   "test.yaml:5:5: expected a map for rule (keys: name, action, from, to, users, listeners, via)"}));
}

TEST(ConfigErrors, EmptyAndBrokenDocuments) {
  EXPECT_EQ(diagnostics_of(""),
            (lines{"test.yaml:1:1: empty config (expected a map with listeners, backends, users, rules, ...)"}));
  EXPECT_EQ(diagnostics_of("# only a comment\n~\n"),
            (lines{"test.yaml:1:1: empty config (expected a map with listeners, backends, users, rules, ...)"}));
  EXPECT_EQ(diagnostics_of("- a\n- b\n"),
            (lines{"test.yaml:1:1: expected a map for config (keys: listeners, backends, users, rules, limits, admin, "
                   "log, reload, upstreams, workers, user, group, allow_root, takeover_socket)"}));
  EXPECT_EQ(diagnostics_of("listeners: [\n"),
            (lines{"test.yaml:2:1: YAML syntax error: end of sequence flow not found"}));
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "rules: []\n"),
            (lines{"test.yaml:5:1: duplicate key 'rules' in config (first at 3:1)"}));
}

TEST(ConfigErrors, SecondYamlDocumentIsAnError) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "---\n"
                                                  "rules: [{name: more, action: allow}]\n"),
            (lines{"test.yaml:5:1: a second YAML document starts here; a config file holds exactly one (remove the "
                   "'---' line and everything after it)"}));
  // Even an empty one: a file that ends in '---' was likely cut short or concatenated.
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "---\n"),
            (lines{"test.yaml:5:1: a second YAML document starts here; a config file holds exactly one (remove the "
                   "'---' line and everything after it)"}));
  // A leading '---' only marks the start of the one document.
  EXPECT_EQ(diagnostics_of("---\n" + std::string(minimal)), lines{});
}

TEST(ConfigLoad, AliasesReadAsTheNodeTheirAnchorNames) {
  // An alias is the anchored node itself: its values, and its positions in diagnostics (the same
  // lines and columns as yaml-cpp's YAML::Load gave).
  const std::string yaml =
      "listeners: [{name: edge, bind: \"127.0.0.1:0\", protocols: [http]}]\n"
      "rules:\n"
      "  - &office {name: office, action: allow, from: &nets [10.1.0.0/16, \"2001:db8::/32\"]}\n"
      "  - {name: lab, action: deny, from: *nets, to: [&host lab.example]}\n"
      "  - {name: again, action: allow, to: [*host, \"bad:port:x\"]}\n";
  const load_result r = load_config_text(yaml, "test.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(to_string(r.diagnostics[0]).substr(0, 16), "test.yaml:5:46: ");
  const load_result ok = load_config_text(
      "listeners: [{name: edge, bind: \"127.0.0.1:0\", protocols: [http]}]\n"
      "rules:\n"
      "  - {name: office, action: allow, from: &nets [10.1.0.0/16, \"2001:db8::/32\"]}\n"
      "  - {name: lab, action: deny, from: *nets, to: [&host lab.example]}\n"
      "  - {name: again, action: allow, to: [*host]}\n",
      "test.yaml");
  ASSERT_TRUE(ok.value.has_value());
  EXPECT_EQ(ok.value->rules[1].from, (std::vector<std::string>{"10.1.0.0/16", "2001:db8::/32"}));
  EXPECT_EQ(ok.value->rules[2].to, std::vector<std::string>{"lab.example"});
  // The anchored rule twice is the same name twice, reported at the anchor's position.
  EXPECT_EQ(diagnostics_of("listeners: [{name: edge, bind: \"127.0.0.1:0\", protocols: [http]}]\n"
                           "rules:\n"
                           "  - &r {name: one, action: allow, users: [nobody]}\n"
                           "  - *r\n"),
            (lines{"test.yaml:3:15: duplicate rule name 'one' (first defined at 3:15)",
                   "test.yaml:3:43: unknown user 'nobody' in users of rule 'one' (no users are defined); certificate "
                   "identities can be named when a listener has tls client_ca",
                   "test.yaml:3:43: unknown user 'nobody' in users of rule 'one' (no users are defined); certificate "
                   "identities can be named when a listener has tls client_ca"}));
}

TEST(ConfigErrors, EmptyListsInRulesAreErrors) {
  // An empty list used to be read as "left out", which matches anything: the opposite of what it says.
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http]}\n"
                           "users:\n"
                           "  - {name: alice, password: \"" +
                           test_hash() +
                           "\"}\n"
                           "rules:\n"
                           "  - {name: a, action: allow, from: []}\n"
                           "  - {name: b, action: allow, to: []}\n"
                           "  - {name: c, action: allow, users: []}\n"
                           "  - name: d\n"
                           "    action: allow\n"
                           "    listeners: []\n"),
            (lines{"test.yaml:6:36: empty list for from (leave from out to match any source, or list at least one "
                   "entry)",
                   "test.yaml:7:34: empty list for to (leave to out to match any destination, or list at least one "
                   "entry)",
                   "test.yaml:8:37: empty list for users (leave users out to match anyone, or list at least one entry)",
                   "test.yaml:11:16: empty list for listeners (leave listeners out to match any listener, or list at "
                   "least one entry)"}));
}

TEST(ConfigErrors, EmptyProtocolsIsAnError) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: []}\n"
                           "rules: [{name: all, action: allow}]\n"),
            (lines{"test.yaml:2:50: listener 'edge' needs at least one protocol (socks5, socks4, http, websocket, "
                   "polling) or forward"}));
}

TEST(ConfigErrors, DurationsHaveAnUpperBound) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) +
                           "limits:\n"
                           "  idle_timeout: 1441m\n"
                           "  connect_timeout: 86400001ms\n"
                           "  handshake_timeout: 999999999999m\n"
                           "  shutdown_grace: 86401s\n"
                           "backends:\n"
                           "  - {name: b, host: db.internal, portbase: 5001, health_check: {interval: 2000m}}\n"),
            (lines{"test.yaml:6:17: bad duration '1441m' for idle_timeout (at most 1440m, 24 hours)",
                   "test.yaml:7:20: bad duration '86400001ms' for connect_timeout (at most 1440m, 24 hours)",
                   "test.yaml:8:22: bad duration '999999999999m' for handshake_timeout (at most 1440m, 24 hours)",
                   "test.yaml:9:19: bad duration '86401s' for shutdown_grace (at most 1440m, 24 hours)",
                   "test.yaml:11:75: bad duration '2000m' for health_check interval (at most 1440m, 24 hours)"}));
  const load_result r = load_config_text(std::string(minimal) +
                                             "limits: {idle_timeout: 1440m, connect_timeout: 86400000ms, "
                                             "shutdown_grace: 86400s}\n",
                                         "test.yaml");
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(r.value->limits.idle_timeout, std::chrono::hours(24));
  EXPECT_EQ(r.value->limits.connect_timeout, std::chrono::hours(24));
  EXPECT_EQ(r.value->limits.shutdown_grace, std::chrono::hours(24));
}

TEST(ConfigErrors, ConflictingBindsAndTls) {
  EXPECT_EQ(diagnostics_of(
                "listeners:\n"
                "  - {name: a, bind: \"0.0.0.0:1080\", protocols: [socks5], tls: {cert: gw.pem}}\n"
                "  - {name: b, bind: \"0.0.0.0:1080\", protocols: [socks4], tls: {cert: c, key: k, min_version: 1.1}}\n"
                "rules: [{name: all, action: allow}]\n"),
            (lines{"test.yaml:2:63: listener tls has a cert but no key",
                   "test.yaml:3:5: listener 'b' bind 0.0.0.0:1080 is already used by listener 'a'",
                   "test.yaml:3:94: bad value '1.1' for tls min_version (expected one of: 1.2, 1.3)"}));
}

TEST(ConfigWarnings, ShadowedRules) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http]}\n"
                           "rules:\n"
                           "  - {name: office, action: allow, from: [10.1.0.0/16], to: [\"*.corp.example\"]}\n"
                           "  - {name: team, action: deny, from: [10.1.2.0/24], to: [\"a.corp.example:443\"]}\n"
                           "  - {name: other, action: allow, from: [10.2.0.0/16]}\n"
                           "  - {name: everyone, action: deny}\n"
                           "  - {name: never, action: allow, from: [192.0.2.0/24]}\n"),
            (lines{"test.yaml:5:5: warning: rule 'team' can never match: the earlier rule 'office' (line 4) matches "
                   "every request it would match",
                   "test.yaml:8:5: warning: rule 'never' can never match: the earlier rule 'everyone' (line 7) "
                   "matches every request it would match"}));
}

TEST(ConfigWarnings, NarrowerEarlierRuleIsNotShadowing) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http]}\n"
                           "rules:\n"
                           "  - {name: a, action: deny, to: [10.0.0.0/8]}\n"
                           "  - {name: b, action: allow, to: [db.internal]}\n"
                           "  - {name: c, action: allow, from: [10.0.0.0/8], to: [\"*\"]}\n"
                           "  - {name: d, action: allow, to: [\"10.1.0.0/16:80\"]}\n"),
            (lines{"test.yaml:7:5: warning: rule 'd' can never match: the earlier rule 'a' (line 4) matches every "
                   "request it would match"}));
}

TEST(ConfigWarnings, BackendReferenceDoesNotShadowItsHostName) {
  // backend:sql reaches only ports 5001 and 5002, so a later rule for host sql on any port still matters;
  // the other way round, host sql on every port covers the backend's service.
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http]}\n"
                           "backends:\n"
                           "  - {name: sql, host: db.internal, portbase: 5001}\n"
                           "rules:\n"
                           "  - {name: service, action: allow, to: [\"backend:sql\"]}\n"
                           "  - {name: all-ports, action: deny, to: [sql]}\n"
                           "  - {name: again, action: allow, to: [\"backend:sql\"]}\n"),
            (lines{"test.yaml:8:5: warning: rule 'again' can never match: the earlier rule 'service' (line 6) matches "
                   "every request it would match"}));
}

TEST(ConfigWarnings, NoRulesAndPasswordWithoutUsers) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http], auth: password}\n"),
            (lines{"test.yaml:1:1: warning: no rules defined: every request will be denied (rules: first match wins, "
                   "no match denies)",
                   "test.yaml:2:5: warning: listener 'edge' asks for a password but no users are defined"}));
}

TEST(ConfigLoad, FullConfigLandsInTheModel) {
  const std::string yaml =
      "listeners:\n"
      "  - name: edge\n"
      "    bind: \"[::]:8080\"\n"
      "    protocols: [http, socks5, socks4]\n"
      "    auth: password\n"
      "    tls: {cert: gw.pem, key: gw.key, client_ca: ca.pem, min_version: \"1.3\", required: true,\n"
      "          certs: [{cert: b.pem, key: b.key}]}\n"
      "    proxy_protocol: {from: [10.0.0.5/32, \"fd00::/64\"]}\n"
      "    sql602_tunnel: sql\n"
      "    fallback: web\n"
      "  - {name: door, bind: \"0.0.0.0:5002\", forward: sql, udp_bind: \"0.0.0.0:5001\"}\n"
      "backends:\n"
      "  - name: sql\n"
      "    host: db.internal\n"
      "    portbase: 5001\n"
      "    kind: sql602\n"
      "    egress: [\"10.9.0.10-10.9.0.127\", 10.9.1.1]\n"
      "    health_check: {interval: 5s, timeout: 250ms}\n"
      "  - {name: web, host: 10.0.0.80, portbase: 79, tls: {ca: ca.pem, server_name: web.internal},\n"
      "     send_proxy: v2}\n"
      "users:\n"
      "  - {name: alice, password: \"" +
      test_hash() +
      "\"}\n"
      "rules:\n"
      "  - name: office\n"
      "    action: allow\n"
      "    from: 10.1.0.0/16\n"
      "    to: [\"backend:sql\", \"10.2.0.0/24:5000-5010\"]\n"
      "    users: [alice]\n"
      "    listeners: [edge]\n"
      "    via: corp\n"
      "limits: {max_sessions: 100, per_source: 10, handshake_timeout: 250ms, connect_timeout: 2s, idle_timeout: 5m,\n"
      "         shutdown_grace: 0s}\n"
      "admin: {bind: \"127.0.0.1:9090\"}\n"
      "log: {level: warn, access: off}\n"
      "reload: {recheck_sessions: true}\n"
      "upstreams: [{name: corp, url: \"http://proxy.corp:3128\"}]\n"
      "workers: 2\n";
  const load_result r = load_config_text(yaml, "full.yaml");
  ASSERT_TRUE(r.value.has_value()) << (r.diagnostics.empty() ? "" : to_string(r.diagnostics[0]));
  EXPECT_TRUE(r.diagnostics.empty()) << to_string(r.diagnostics[0]);
  const config& c = *r.value;
  EXPECT_EQ(c.source, "full.yaml");
  ASSERT_EQ(c.listeners.size(), 2U);
  const listener_config& edge = c.listeners[0];
  EXPECT_EQ(edge.bind.host, "::");
  EXPECT_EQ(edge.bind.port, 8080);
  EXPECT_EQ(edge.protocols, (std::vector<protocol>{protocol::http, protocol::socks5, protocol::socks4}));
  EXPECT_EQ(edge.auth, auth_mode::password);
  ASSERT_TRUE(edge.tls.has_value());
  EXPECT_EQ(edge.tls->cert, "gw.pem");  // text configs have no directory to resolve against
  EXPECT_EQ(edge.tls->client_ca, "ca.pem");
  EXPECT_EQ(edge.tls->min_version, "1.3");
  EXPECT_TRUE(edge.tls->required);
  ASSERT_EQ(edge.tls->certs.size(), 1U);
  EXPECT_EQ(edge.tls->certs[0].key, "b.key");
  ASSERT_TRUE(edge.proxy_protocol.has_value());
  EXPECT_EQ(edge.proxy_protocol->from, (std::vector<std::string>{"10.0.0.5/32", "fd00::/64"}));
  EXPECT_EQ(edge.sql602_tunnel, "sql");
  EXPECT_EQ(edge.fallback, "web");
  EXPECT_EQ(edge.mark.line, 2);
  EXPECT_EQ(edge.mark.column, 5);
  const listener_config& door = c.listeners[1];
  EXPECT_EQ(door.forward, "sql");
  EXPECT_TRUE(door.protocols.empty());
  EXPECT_EQ(door.fallback, "404");
  ASSERT_TRUE(door.udp_bind.has_value());
  EXPECT_EQ(door.udp_bind->port, 5001);
  ASSERT_EQ(c.backends.size(), 2U);
  const backend_config& sql = c.backends[0];
  EXPECT_EQ(sql.host, "db.internal");
  EXPECT_EQ(sql.portbase, 5001);
  EXPECT_EQ(sql.kind, backend_kind::sql602);
  ASSERT_EQ(sql.egress.size(), 2U);
  EXPECT_EQ(sql.egress[0].first, (std::array<std::uint8_t, 4>{10, 9, 0, 10}));
  EXPECT_EQ(sql.egress[0].last, (std::array<std::uint8_t, 4>{10, 9, 0, 127}));
  EXPECT_EQ(sql.egress[1].first, sql.egress[1].last);
  ASSERT_TRUE(sql.health_check.has_value());
  EXPECT_EQ(sql.health_check->timeout, duration{250});
  EXPECT_EQ(c.backends[1].kind, backend_kind::tcp);
  ASSERT_TRUE(c.backends[1].tls.has_value());
  EXPECT_EQ(c.backends[1].tls->server_name, "web.internal");
  EXPECT_TRUE(c.backends[1].send_proxy_v2);
  EXPECT_FALSE(c.backends[0].send_proxy_v2);
  ASSERT_EQ(c.users.size(), 1U);
  EXPECT_EQ(c.users[0].password_hash, test_hash());
  ASSERT_EQ(c.rules.size(), 1U);
  EXPECT_TRUE(c.rules[0].allow);
  EXPECT_EQ(c.rules[0].from, (std::vector<std::string>{"10.1.0.0/16"}));
  EXPECT_EQ(c.rules[0].to.size(), 2U);
  EXPECT_EQ(c.rules[0].via, "corp");
  EXPECT_EQ(c.limits.max_sessions, 100U);
  EXPECT_EQ(c.limits.per_source, 10U);
  EXPECT_EQ(c.limits.handshake_timeout, duration{250});
  EXPECT_EQ(c.limits.idle_timeout, duration{300'000});
  EXPECT_EQ(c.limits.shutdown_grace, duration{0});
  ASSERT_TRUE(c.admin.bind.has_value());
  EXPECT_EQ(c.admin.bind->port, 9090);
  EXPECT_EQ(c.log.level, log_level::warn);
  EXPECT_FALSE(c.log.access_json);
  EXPECT_TRUE(c.reload.recheck_sessions);
  ASSERT_EQ(c.upstreams.size(), 1U);
  EXPECT_EQ(c.upstreams[0].url, "http://proxy.corp:3128");
  EXPECT_EQ(c.workers, 2U);
}

TEST(ConfigLoad, AuthFailuresInLimits) {
  const load_result defaults = load_config_text(minimal, "m.yaml");
  ASSERT_TRUE(defaults.value.has_value());
  const auth_failures_config& d = defaults.value->limits.auth_failures;
  EXPECT_EQ(d.max, 5U);
  EXPECT_EQ(d.window, duration{60'000});
  EXPECT_EQ(d.backoff, duration{30'000});
  EXPECT_EQ(d.user_delay, duration{2'000});

  const load_result r = load_config_text(
      std::string(minimal) + "limits: {auth_failures: {max: 3, window: 2m, backoff: 90s, user_delay: 0ms}}\n",
      "a.yaml");
  ASSERT_TRUE(r.value.has_value()) << (r.diagnostics.empty() ? "" : to_string(r.diagnostics[0]));
  const auth_failures_config& a = r.value->limits.auth_failures;
  EXPECT_EQ(a.max, 3U);
  EXPECT_EQ(a.window, duration{120'000});
  EXPECT_EQ(a.backoff, duration{90'000});
  EXPECT_EQ(a.user_delay, duration{0});
  // Keys left out keep their defaults.
  const load_result partial = load_config_text(std::string(minimal) + "limits: {auth_failures: {max: 10}}\n", "p.yaml");
  ASSERT_TRUE(partial.value.has_value());
  EXPECT_EQ(partial.value->limits.auth_failures.max, 10U);
  EXPECT_EQ(partial.value->limits.auth_failures.backoff, duration{30'000});
}

TEST(ConfigErrors, BadAuthFailuresNameFileLineColumn) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits:\n"
                                                  "  auth_failures:\n"
                                                  "    max: 0\n"
                                                  "    window: 0s\n"
                                                  "    backoff: 1441m\n"
                                                  "    user_delay: soon\n"
                                                  "    lockout: true\n"),
            (lines{"test.yaml:7:10: bad value '0' for auth_failures max (expected a whole number 1-1000000)",
                   "test.yaml:8:13: bad duration '0s' for auth_failures window (must be greater than zero)",
                   "test.yaml:9:14: bad duration '1441m' for auth_failures backoff (at most 1440m, 24 hours)",
                   "test.yaml:10:17: bad duration 'soon' for auth_failures user_delay (expected a whole number with "
                   "unit ms, s or m, e.g. 250ms, 10s, 5m)",
                   "test.yaml:11:5: unknown key 'lockout' in auth_failures (expected one of: max, window, backoff, "
                   "user_delay)"}));
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits: {auth_failures: 5}\n"),
            (lines{"test.yaml:5:25: expected a map for auth_failures (keys: max, window, backoff, user_delay)"}));
}

TEST(ConfigLoad, TlsHandshakesInLimits) {
  const load_result defaults = load_config_text(minimal, "m.yaml");
  ASSERT_TRUE(defaults.value.has_value());
  EXPECT_EQ(defaults.value->limits.tls_handshakes.max, 512U);
  EXPECT_EQ(defaults.value->limits.tls_handshakes.per_source, 32U);

  const load_result r =
      load_config_text(std::string(minimal) + "limits: {tls_handshakes: {max: 256, per_source: 16}}\n", "t.yaml");
  ASSERT_TRUE(r.value.has_value()) << (r.diagnostics.empty() ? "" : to_string(r.diagnostics[0]));
  EXPECT_EQ(r.value->limits.tls_handshakes.max, 256U);
  EXPECT_EQ(r.value->limits.tls_handshakes.per_source, 16U);
  // Keys left out keep their defaults; per_source may equal max.
  const load_result partial =
      load_config_text(std::string(minimal) + "limits: {tls_handshakes: {max: 32}}\n", "p.yaml");
  ASSERT_TRUE(partial.value.has_value());
  EXPECT_EQ(partial.value->limits.tls_handshakes.max, 32U);
  EXPECT_EQ(partial.value->limits.tls_handshakes.per_source, 32U);
  const load_result big = load_config_text(
      std::string(minimal) + "limits: {tls_handshakes: {max: 1000000, per_source: 1000000}}\n", "b.yaml");
  ASSERT_TRUE(big.value.has_value());
  EXPECT_EQ(big.value->limits.tls_handshakes.per_source, 1'000'000U);
}

TEST(ConfigErrors, BadTlsHandshakesNameFileLineColumn) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits:\n"
                                                  "  tls_handshakes:\n"
                                                  "    max: 0\n"
                                                  "    per_source: -3\n"
                                                  "    rate: 10\n"),
            (lines{"test.yaml:7:10: bad value '0' for tls_handshakes max (expected a whole number 1-1000000)",
                   "test.yaml:8:17: bad value '-3' for tls_handshakes per_source (expected a whole number 1-1000000)",
                   "test.yaml:9:5: unknown key 'rate' in tls_handshakes (expected one of: max, per_source)"}));
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits: {tls_handshakes: {max: 1000001, per_source: many}}\n"),
            (lines{"test.yaml:5:32: bad value '1000001' for tls_handshakes max (expected a whole number 1-1000000)",
                   "test.yaml:5:53: bad value 'many' for tls_handshakes per_source (expected a whole number "
                   "1-1000000)"}));
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits: {tls_handshakes: 64}\n"),
            (lines{"test.yaml:5:26: expected a map for tls_handshakes (keys: max, per_source)"}));
}

TEST(ConfigErrors, TlsHandshakesPerSourceAboveMaxIsAnError) {
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits:\n"
                                                  "  tls_handshakes:\n"
                                                  "    max: 8\n"
                                                  "    per_source: 9\n"),
            (lines{"test.yaml:8:17: tls_handshakes per_source 9 is above max 8 (one source cannot run more than "
                   "the whole process)"}));
  // Only max written: the default per_source (32) is what it conflicts with, said at max.
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits: {tls_handshakes: {max: 16}}\n"),
            (lines{"test.yaml:5:32: tls_handshakes max 16 is below per_source 32 (its default); set per_source "
                   "too"}));
  // Only per_source written, above the default max.
  EXPECT_EQ(diagnostics_of(std::string(minimal) + "limits: {tls_handshakes: {per_source: 513}}\n"),
            (lines{"test.yaml:5:39: tls_handshakes per_source 513 is above max 512 (one source cannot run more "
                   "than the whole process)"}));
}

TEST(ConfigLoad, DefaultsWhenKeysAreLeftOut) {
  const load_result r = load_config_text(minimal, "m.yaml");
  ASSERT_TRUE(r.value.has_value());
  const config& c = *r.value;
  EXPECT_EQ(c.workers, 0U);
  EXPECT_EQ(c.limits.max_sessions, 20000U);
  EXPECT_EQ(c.limits.idle_timeout, duration{600'000});
  EXPECT_EQ(c.log.level, log_level::info);
  EXPECT_TRUE(c.log.access_json);
  EXPECT_FALSE(c.admin.bind.has_value());
  EXPECT_EQ(c.listeners[0].auth, auth_mode::none);
  EXPECT_EQ(c.listeners[0].fallback, "404");
}

TEST(ConfigLoad, DefaultConfig) {
  const config c = default_config();
  EXPECT_EQ(c.source, "<built-in>");
  ASSERT_EQ(c.listeners.size(), 1U);
  EXPECT_EQ(c.listeners[0].name, "default");
  EXPECT_EQ(c.listeners[0].bind.host, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].bind.port, 1080);
  EXPECT_EQ(c.listeners[0].protocols, (std::vector<protocol>{protocol::socks5, protocol::socks4, protocol::http}));
  ASSERT_EQ(c.rules.size(), 1U);
  EXPECT_EQ(c.rules[0].name, "loopback-clients");
  EXPECT_TRUE(c.rules[0].allow);
  EXPECT_EQ(c.rules[0].from, (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_TRUE(c.rules[0].to.empty());
}

TEST(ConfigLoad, FileMissingIsADiagnostic) {
  const load_result r = load_config_file("/nonexistent/edgerelay.yaml");
  EXPECT_FALSE(r.value.has_value());
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(to_string(r.diagnostics[0]), "/nonexistent/edgerelay.yaml: cannot open config file");
}

TEST(ConfigLoad, DirectoryIsADiagnostic) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  const load_result r = load_config_file(dir);
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(to_string(r.diagnostics[0]), dir + ": is a directory, not a config file");
}

/// A fresh temporary directory, removed with the fixture.
class ConfigFile : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("edgerelay-load-" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(ConfigFile, FifoIsRefusedWithoutBlocking) {
  const std::string path = (dir_ / "gw.yaml").string();
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  auto loading = std::async(std::launch::async, [&] { return load_config_file(path); });
  if (loading.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    // Release the blocked reader so the test can end, then fail.
    const int fd = open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) {
      close(fd);
    }
    FAIL() << "load_config_file blocked on a FIFO";
  }
  const load_result r = loading.get();
  EXPECT_FALSE(r.value.has_value());
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(to_string(r.diagnostics[0]), path + ": is a FIFO, not a config file (expected a regular file)");
}

TEST_F(ConfigFile, DeviceIsRefused) {
  const load_result r = load_config_file("/dev/null");
  EXPECT_FALSE(r.value.has_value());
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(to_string(r.diagnostics[0]), "/dev/null: is a device, not a config file (expected a regular file)");
}

TEST_F(ConfigFile, SymlinkToARegularFileLoads) {
  // ConfigMap mounts reach the file through symlinks: the check is on what the link points to.
  const auto real = dir_ / "real.yaml";
  std::ofstream(real) << minimal;
  std::filesystem::create_symlink(real, dir_ / "gw.yaml");
  const load_result r = load_config_file((dir_ / "gw.yaml").string());
  EXPECT_TRUE(r.value.has_value());
}

TEST_F(ConfigFile, OversizedFileIsRefusedBeforeReading) {
  const auto path = dir_ / "gw.yaml";
  std::ofstream(path) << minimal;
  std::filesystem::resize_file(path, max_config_file_size + 1);  // sparse: costs no disk
  const load_result r = load_config_file(path.string());
  EXPECT_FALSE(r.value.has_value());
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(to_string(r.diagnostics[0]),
            path.string() + ": is 16777217 bytes, over the limit of 16777216 bytes (16 MiB) for a config file");
}

TEST_F(ConfigFile, FileAtTheLimitIsRead) {
  // Padding with YAML comment lines keeps the document valid up to the limit.
  const auto path = dir_ / "gw.yaml";
  std::string text = minimal;
  const std::string pad = "#" + std::string(1022, 'x') + "\n";
  while (text.size() + pad.size() <= max_config_file_size) {
    text += pad;
  }
  text += std::string(max_config_file_size - text.size() - 1, '#') + "\n";
  ASSERT_EQ(text.size(), max_config_file_size);
  std::ofstream(path, std::ios::binary) << text;
  const load_result r = load_config_file(path.string());
  EXPECT_TRUE(r.value.has_value());
}

TEST(ConfigLoad, FileResolvesRelativeTlsPathsAgainstItsDirectory) {
  const auto dir = std::filesystem::temp_directory_path() / "edgerelay-config-test";
  std::filesystem::create_directories(dir);
  const auto path = dir / "gw.yaml";
  {
    std::ofstream out(path);
    out << "listeners:\n"
           "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [http], tls: {cert: gw.pem, key: /abs/gw.key}}\n"
           "rules: [{name: all, action: allow}]\n";
  }
  const load_result r = load_config_file(path.string());
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(r.value->listeners[0].tls->cert, (dir / "gw.pem").string());
  EXPECT_EQ(r.value->listeners[0].tls->key, "/abs/gw.key");
  EXPECT_EQ(r.value->source, path.string());
  std::filesystem::remove_all(dir);
}

TEST(ConfigLoad, ShippedExampleLoadsWithoutFindings) {
  const load_result r = load_config_file(EDGERELAY_EXAMPLE_CONFIG);
  std::string all;
  for (const auto& d : r.diagnostics) {
    all += to_string(d) + "\n";
  }
  ASSERT_TRUE(r.value.has_value()) << all;
  EXPECT_TRUE(r.diagnostics.empty()) << all;
  EXPECT_GE(r.value->listeners.size(), 3U);
  EXPECT_GE(r.value->users.size(), 1U);
}

}  // namespace
}  // namespace edgerelay::config

namespace edgerelay::config {
namespace {

TEST(ConfigWebSocket, ProtocolAndPathLoadAndBadOnesNameTheirPlace) {
  EXPECT_EQ(diagnostics_of("listeners:\n"
                           "  - {name: ws, bind: \"127.0.0.1:0\", protocols: [websocket], websocket_path: \"/a b\"}\n"
                           "  - {name: plain, bind: \"127.0.0.1:0\", protocols: [http], websocket_path: /t}\n"
                           "  - {name: rel, bind: \"127.0.0.1:0\", protocols: [websocket], websocket_path: t}\n"
                           "rules: [{name: all, action: allow}]\n"),
            (lines{"test.yaml:2:77: bad websocket_path '/a b' (expected an absolute path of letters, digits and "
                   "-._~/ such as /edgerelay)",
                   "test.yaml:3:75: listener 'plain' has websocket_path, which needs protocol websocket or polling",
                   "test.yaml:4:78: bad websocket_path 't' (expected an absolute path of letters, digits and -._~/ "
                   "such as /edgerelay)"}));
  EXPECT_EQ(
      diagnostics_of("listeners:\n"
                     "  - {name: ws, bind: \"127.0.0.1:0\", protocols: [http, websocket], websocket_path: /t/in}\n"
                     "rules: [{name: all, action: allow}]\n"),
      lines{});
}

}  // namespace
}  // namespace edgerelay::config
