// The config side of `edgerelay check`, `explain` and `passwd`: output text and exit codes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/address.hpp"
#include "config/commands.hpp"
#include "config/load.hpp"
#include "config/password.hpp"

namespace edgerelay::config {
namespace {

/// A config file in a fresh temporary directory, removed with the fixture.
class ConfigCommands : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("edgerelay-commands-" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& yaml) {
    const auto path = dir_ / "edgerelay.yaml";
    std::ofstream(path) << yaml;
    return path.string();
  }

  std::filesystem::path dir_;
};

const char* const gateway =
    "listeners:\n"
    "  - {name: edge, bind: \"0.0.0.0:8080\", protocols: [http, socks5]}\n"
    "  - {name: door, bind: \"[::]:5002\", forward: sql, udp_bind: \"[::]:5001\"}\n"
    "backends:\n"
    "  - {name: sql, host: db.internal, portbase: 5001, kind: sql602, health_check: {interval: 5s, timeout: 2s}}\n"
    "rules:\n"
    "  - {name: no-private, action: deny, to: [10.0.0.0/8]}\n"
    "  - {name: office, action: allow, from: [192.0.2.0/24]}\n";

TEST_F(ConfigCommands, CheckPrintsSummary) {
  const command_result r = check_command(write(gateway));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "config " + (dir_ / "edgerelay.yaml").string() +
                       ": 2 listeners, 1 backend, 0 users, 2 rules, 0 upstreams\n"
                       "listener edge: 0.0.0.0:8080 protocols http, socks5; auth none\n"
                       "listener door: [::]:5002 forward to sql; udp [::]:5001\n"
                       "backend sql: db.internal portbase 5001 kind sql602; health check every 5s\n"
                       "rule 1 no-private: deny\n"
                       "rule 2 office: allow\n"
                       "workers: auto\n"
                       "OK\n");
}

TEST_F(ConfigCommands, CheckFailsWithDiagnostics) {
  const std::string path = write("listeners:\n  - {name: edge, bind: \"0.0.0.0:99999\", protocols: [http]}\n");
  const command_result r = check_command(path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, path +
                       ":1:1: warning: no rules defined: every request will be denied (rules: first match wins, "
                       "no match denies)\n" +
                       path +
                       ":2:24: bad bind '0.0.0.0:99999': port '99999' must be a number 0-65535 (expected "
                       "\"host:port\" or \"[v6]:port\" with a literal IP address)\n");
}

TEST_F(ConfigCommands, CheckWarnsAboutAnOpenProxy) {
  const std::string path = write(
      "listeners:\n"
      "  - {name: edge, bind: \"0.0.0.0:8080\", protocols: [http, socks5]}\n"
      "  - {name: local, bind: \"127.0.0.1:1080\", protocols: [socks5]}\n"
      "  - {name: v6, bind: \"[::]:1081\", protocols: [socks5]}\n"
      "rules:\n"
      "  - {name: world, action: allow, from: [0.0.0.0/0], to: [\"*\"]}\n"
      "  - {name: v6-world, action: allow, from: [\"::/0\"], to: [\"0.0.0.0/0\"], listeners: [v6]}\n");
  const command_result r = check_command(path);
  EXPECT_EQ(r.exit_code, 0);  // a warning, not an error: some gateways mean to be open
  EXPECT_EQ(r.err, path +
                       ":6:5: warning: rule 'world' makes listener 'edge' (0.0.0.0:8080) an open proxy: it allows any "
                       "source to any destination without users (add from, users or auth: password, or bind the "
                       "listener to loopback)\n" +
                       path +
                       ":6:5: warning: rule 'world' makes listener 'v6' ([::]:1081) an open proxy: it allows any "
                       "source to any destination without users (add from, users or auth: password, or bind the "
                       "listener to loopback)\n");
  EXPECT_NE(r.out.find("OK\n"), std::string::npos);
}

TEST_F(ConfigCommands, CheckDoesNotWarnWhenTheDoorIsClosed) {
  // Each rule misses one ingredient of an open proxy; the loopback listener is open to nobody outside.
  const command_result r =
      check_command(write("listeners:\n"
                          "  - {name: edge, bind: \"0.0.0.0:8080\", protocols: [http, socks5]}\n"
                          "  - {name: locked, bind: \"0.0.0.0:1080\", protocols: [socks5], auth: password}\n"
                          "  - {name: local, bind: \"127.0.0.1:1081\", protocols: [socks5]}\n"
                          "  - {name: door, bind: \"0.0.0.0:5002\", forward: sql}\n"
                          "backends:\n"
                          "  - {name: sql, host: db.internal, portbase: 5001}\n"
                          "users:\n"
                          "  - {name: alice, password: \"" +
                          hash_password("pw", 1000) +
                          "\"}\n"
                          "rules:\n"
                          "  - {name: office, action: allow, from: [10.0.0.0/8]}\n"
                          "  - {name: members, action: allow, users: [alice]}\n"
                          "  - {name: web-only, action: allow, to: [\"*.corp.example\"]}\n"
                          "  - {name: v4-web, action: allow, to: [\"192.0.2.0/24\"]}\n"
                          "  - {name: local-any, action: allow, listeners: [local, locked, door]}\n"));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
}

TEST_F(ConfigCommands, ExplainAddressTarget) {
  const command_result r = explain_command(write(gateway), "192.0.2.7", "10.1.2.3:443", "", "edge");
  EXPECT_EQ(r.exit_code, exit_denied);
  EXPECT_EQ(r.out,
            "request: from 192.0.2.7 to 10.1.2.3:443 listener 'edge'\n"
            "decision: deny by rule 'no-private'\n");
}

TEST_F(ConfigCommands, ExplainNameWithoutResolver) {
  const command_result r = explain_command(write(gateway), "192.0.2.7", "Example.COM:443", "", "edge");
  EXPECT_EQ(r.exit_code, exit_undecided);
  EXPECT_EQ(r.out,
            "request: from 192.0.2.7 to Example.COM:443 listener 'edge'\n"
            "before resolving example.com:\n"
            "rule 1 'no-private': depends on the address: to 10.0.0.0/8 names networks and example.com is not "
            "resolved yet\n"
            "decision: needs address (resolve example.com and decide again for each address)\n"
            "(not resolved: each address the gateway dials is checked again)\n");
}

TEST_F(ConfigCommands, ExplainNameResolvingIntoDeniedRange) {
  const resolve_function resolve = [](std::string_view host) {
    EXPECT_EQ(host, "evil.example");
    return std::vector<ip_address>{*parse_ip_address("10.0.0.1")};
  };
  const command_result r = explain_command(write(gateway), "192.0.2.7", "evil.example:80", "", "edge", resolve);
  EXPECT_EQ(r.exit_code, exit_denied);
  EXPECT_NE(r.out.find("address 10.0.0.1:\ndecision: deny by rule 'no-private'\n"), std::string::npos) << r.out;
}

TEST_F(ConfigCommands, ExplainAllowedWhenOneAddressIsAllowed) {
  const resolve_function resolve = [](std::string_view) {
    return std::vector<ip_address>{*parse_ip_address("10.0.0.1"), *parse_ip_address("2001:db8::1")};
  };
  const command_result r = explain_command(write(gateway), "192.0.2.7", "mixed.example:80", "", "edge", resolve);
  EXPECT_EQ(r.exit_code, exit_ok);
  EXPECT_NE(r.out.find("address 2001:db8::1:\nrule 1 'no-private': no match: to 10.0.0.0/8 does not match "
                       "mixed.example:80 (address 2001:db8::1)\ndecision: allow by rule 'office'\n"),
            std::string::npos)
      << r.out;
}

TEST_F(ConfigCommands, ExplainTransportDecidesWhichBackendPortIsItsService) {
  const std::string path = write(
      "listeners:\n"
      "  - {name: door, bind: \"127.0.0.1:5002\", forward: sql, udp_bind: \"127.0.0.1:5001\"}\n"
      "backends:\n"
      "  - {name: sql, host: db.internal, portbase: 5001, kind: sql602}\n"
      "rules:\n"
      "  - {name: to-sql, action: allow, to: [\"backend:sql\"]}\n");
  command_result r = explain_command(path, "192.0.2.7", "sql:5001", "", "door", {}, "udp");
  EXPECT_EQ(r.exit_code, exit_ok);
  EXPECT_EQ(r.out,
            "request: from 192.0.2.7 to sql:5001 listener 'door' over udp\n"
            "before resolving sql:\n"
            "decision: allow by rule 'to-sql'\n"
            "(not resolved: each address the gateway dials is checked again)\n");
  r = explain_command(path, "192.0.2.7", "sql:5001", "", "door");
  EXPECT_EQ(r.exit_code, exit_denied);
  EXPECT_NE(r.out.find("does not match sql:5001 (backend:sql reaches only TCP port 5002"), std::string::npos) << r.out;
  r = explain_command(path, "192.0.2.7", "sql:5002", "", "door", {}, "udp");
  EXPECT_EQ(r.exit_code, exit_denied);
  EXPECT_NE(r.out.find("does not match sql:5002 (udp) (backend:sql"), std::string::npos) << r.out;
  r = explain_command(path, "192.0.2.7", "sql:5002", "", "door", {}, "sctp");
  EXPECT_EQ(r.exit_code, exit_usage);
  EXPECT_EQ(r.err, "edgerelay explain: --transport 'sctp': expected tcp or udp\n");
}

TEST_F(ConfigCommands, ExplainBuiltInDefaultAndUsageErrors) {
  command_result r = explain_command("", "127.0.0.1", "[::1]:22", "", "");
  EXPECT_EQ(r.exit_code, exit_ok);
  EXPECT_EQ(r.out, "request: from 127.0.0.1 to [::1]:22\ndecision: allow by rule 'loopback-clients'\n");
  r = explain_command("", "somehost", "a:1", "", "");
  EXPECT_EQ(r.exit_code, exit_usage);
  EXPECT_EQ(r.err, "edgerelay explain: --from 'somehost' is not an IP address\n");
  r = explain_command("", "127.0.0.1", "a.example", "", "");
  EXPECT_EQ(r.exit_code, exit_usage);
  EXPECT_EQ(r.err, "edgerelay explain: --to 'a.example': missing ':port' (expected HOST:PORT)\n");
  r = explain_command("/nonexistent.yaml", "127.0.0.1", "a:1", "", "");
  EXPECT_EQ(r.exit_code, exit_config_error);
  EXPECT_EQ(r.err, "/nonexistent.yaml: cannot open config file\n");
}

TEST(ConfigPasswd, PrintsAVerifiableHash) {
  const command_result r = passwd_command("s3cret\r\nignored\n");
  EXPECT_EQ(r.exit_code, 0);
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  const std::string hash = r.out.substr(0, r.out.size() - 1);
  EXPECT_TRUE(verify_password(hash, "s3cret"));
  EXPECT_EQ(r.out.find("s3cret"), std::string::npos);
  EXPECT_EQ(r.err, "");
}

TEST(ConfigPasswd, RefusesEmptyInput) {
  const command_result r = passwd_command("\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "edgerelay passwd: no password on stdin (type it and press Enter, or pipe it in)\n");
}

TEST(ConfigSummary, DefaultConfig) {
  EXPECT_EQ(summarize(default_config()),
            "config <built-in>: 1 listener, 0 backends, 0 users, 1 rule, 0 upstreams\n"
            "listener default: 127.0.0.1:1080 protocols socks5, socks4, http; auth none\n"
            "rule 1 loopback-clients: allow\n"
            "workers: auto\n");
}

}  // namespace
}  // namespace edgerelay::config
