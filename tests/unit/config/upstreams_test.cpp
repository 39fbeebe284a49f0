// The upstreams section: proxies, chains and pools as they load, every mistake as file:line:col,
// and what check and explain say about routes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/address.hpp"
#include "config/commands.hpp"
#include "config/load.hpp"

namespace edgerelay::config {
namespace {

using lines = std::vector<std::string>;

const std::string head =
    "listeners:\n"
    "  - {name: edge, bind: \"127.0.0.1:1080\", protocols: [socks5]}\n";

lines errors_of(const std::string& yaml) {
  const load_result r = load_config_text(yaml, "up.yaml");
  lines out;
  for (const auto& d : r.diagnostics) {
    if (d.level == severity::error) out.push_back(to_string(d));
  }
  return out;
}

class temp_dir {
 public:
  temp_dir() : path_(std::filesystem::temp_directory_path() / ("edgerelay-up-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

TEST(Upstreams, ProxiesChainsAndPoolsLoad) {
  temp_dir dir;
  dir.write("corp.pass", "hunter2\n");
  ::setenv("EDGERELAY_TEST_PARTNER_PASSWORD", "p@ss word", 1);
  const std::string path =
      dir.write("gw.yaml", head +
                               "upstreams:\n"
                               "  - name: corp\n"
                               "    url: http://proxy.corp:3128\n"
                               "    user: gw\n"
                               "    password_file: corp.pass\n"
                               "  - {name: partner, url: \"socks5://10.9.0.1:1080\", user: edge,\n"
                               "     password_env: EDGERELAY_TEST_PARTNER_PASSWORD}\n"
                               "  - {name: tls, url: \"https://gw.example:8443\", ca: ca.pem,\n"
                               "     server_name: gw.example}\n"
                               "  - {name: old, url: \"socks4a://10.9.0.2:1080\", user: ident}\n"
                               "  - {name: both, chain: [partner, corp], resolve: upstream}\n"
                               "  - {name: any, pool: [partner, old], fail_after: 2, set_aside: 5s}\n"
                               "rules:\n"
                               "  - {name: r, action: allow, via: both}\n");
  const load_result r = load_config_file(path);
  ASSERT_TRUE(r.value.has_value()) << (r.diagnostics.empty() ? "" : to_string(r.diagnostics[0]));
  const auto& u = r.value->upstreams;
  ASSERT_EQ(u.size(), 6U);
  EXPECT_EQ(u[0].scheme, upstream_scheme::http);
  EXPECT_EQ(u[0].host, "proxy.corp");
  EXPECT_EQ(u[0].port, 3128);
  EXPECT_EQ(u[0].password, "hunter2");  // one trailing newline is the file's, not the password's
  EXPECT_EQ(u[1].password, "p@ss word");
  EXPECT_EQ(u[1].scheme, upstream_scheme::socks5);
  ASSERT_TRUE(u[2].tls.has_value());
  EXPECT_EQ(u[2].tls->ca, (std::filesystem::path(path).parent_path() / "ca.pem").string());
  EXPECT_EQ(u[2].tls->server_name, "gw.example");
  EXPECT_EQ(u[3].scheme, upstream_scheme::socks4a);
  EXPECT_EQ(u[4].chain, (std::vector<std::string>{"partner", "corp"}));
  EXPECT_EQ(u[4].resolve, upstream_resolve::upstream);
  EXPECT_EQ(u[5].pool, (std::vector<std::string>{"partner", "old"}));
  EXPECT_EQ(u[5].fail_after, 2U);
  EXPECT_EQ(u[5].set_aside, duration{5000});
  // The summary names where a password comes from, never the password.
  const std::string summary = summarize(*r.value);
  EXPECT_NE(summary.find("upstream corp: http://proxy.corp:3128; user gw, password from file "), std::string::npos);
  EXPECT_NE(summary.find("upstream both: chain partner -> corp; resolve upstream"), std::string::npos);
  EXPECT_NE(summary.find("upstream any: pool partner, old (fail_after 2, set_aside 5s)"), std::string::npos);
  EXPECT_EQ(summary.find("hunter2"), std::string::npos);
  EXPECT_EQ(summary.find("p@ss"), std::string::npos);
}

TEST(Upstreams, CredentialsInTheUrlAreRefusedWithoutQuotingThem) {
  const lines e = errors_of(head + "upstreams:\n  - {name: corp, url: \"http://gw:s3cret@proxy:3128\"}\n");
  ASSERT_EQ(e.size(), 1U);
  EXPECT_EQ(e[0],
            "up.yaml:4:23: upstream url holds credentials (user:password@): they are refused in urls, which end up "
            "in logs; set user and password_file or password_env instead");
  EXPECT_EQ(e[0].find("s3cret"), std::string::npos);
}

TEST(Upstreams, MistakesNameFileLineColumn) {
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a, url: \"socks5://proxy\"}\n"),
            (lines{"up.yaml:4:20: bad upstream url 'socks5://proxy' (missing ':port'; expected socks5://, "
                   "socks4a://, http:// or https://host:port)"}));
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a}\n"),
            (lines{"up.yaml:4:5: upstream 'a' needs a url (socks5://, socks4a://, http:// or https://host:port), a "
                   "chain or a pool"}));
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a, url: \"http://p:1\", pool: [a]}\n"),
            (lines{"up.yaml:4:5: upstream 'a' takes one of url, chain and pool",
                   "up.yaml:4:5: upstream 'a' is part of a cycle: a -> a"}));
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a, url: \"http://p:1\", ca: ca.pem}\n"),
            (lines{"up.yaml:4:38: upstream 'a': ca and server_name need an https:// url (TLS to the proxy)"}));
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a, url: \"http://p:1\", user: u}\n"),
            (lines{"up.yaml:4:5: upstream 'a' has a user but no password_file or password_env"}));
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a, url: \"http://p:1\", password_env: HOME}\n"),
            (lines{"up.yaml:4:48: upstream 'a' has a password but no user"}));
  EXPECT_EQ(
      errors_of(head + "upstreams:\n  - {name: a, url: \"http://p:1\", user: u, password_file: /nonexistent/p}\n"),
      (lines{"up.yaml:4:58: upstream 'a': cannot open password_file /nonexistent/p"}));
  ::unsetenv("EDGERELAY_TEST_UNSET");
  EXPECT_EQ(
      errors_of(head + "upstreams:\n  - {name: a, url: \"http://p:1\", user: u, password_env: EDGERELAY_TEST_UNSET}\n"),
      (lines{"up.yaml:4:57: upstream 'a': environment variable EDGERELAY_TEST_UNSET (password_env) is not set"}));
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a, chain: [b]}\n"),
            (lines{"up.yaml:4:23: unknown upstream 'b' in chain of upstream 'a' (known upstreams: a)"}));
  EXPECT_EQ(errors_of(head + "upstreams:\n  - {name: a, url: \"http://p:1\", fail_after: 2}\n"),
            (lines{"up.yaml:4:46: upstream 'a': fail_after and set_aside belong to an upstream with a pool"}));
  EXPECT_EQ(errors_of(head + "rules:\n  - {name: r, action: allow, via: nowhere}\n"),
            (lines{"up.yaml:4:35: unknown upstream 'nowhere' in via of rule 'r' (no upstreams are defined)"}));
}

TEST(Upstreams, CyclesAreRefused) {
  const lines e = errors_of(head +
                            "upstreams:\n"
                            "  - {name: p, url: \"http://p:1\"}\n"
                            "  - {name: a, chain: [p, b]}\n"
                            "  - {name: b, pool: [p, a]}\n");
  ASSERT_EQ(e.size(), 1U);
  EXPECT_EQ(e[0], "up.yaml:5:5: upstream 'a' is part of a cycle: a -> b -> a");
}

TEST(Upstreams, HttpsAfterTheFirstHopIsRefused) {
  EXPECT_EQ(errors_of(head + "upstreams:\n"
                             "  - {name: s, url: \"https://s:443\"}\n"
                             "  - {name: p, url: \"http://p:1\"}\n"
                             "  - {name: first, chain: [s, p]}\n"
                             "  - {name: later, chain: [p, s]}\n"),
            (lines{"up.yaml:7:5: upstream 'later' puts https upstream 's' after the first hop: TLS inside a tunnel "
                   "(TLS in TLS) is not supported; use http:// for that hop or make it the first"}));
}

class commands : public ::testing::Test {
 protected:
  temp_dir dir;
  std::string write(const std::string& yaml) { return dir.write("gw.yaml", yaml); }
};

const std::string routed = head +
                           "upstreams:\n"
                           "  - {name: partner, url: \"socks5://127.0.0.1:1081\"}\n"
                           "  - {name: corp, url: \"http://127.0.0.1:3128\"}\n"
                           "  - {name: spare, url: \"http://127.0.0.1:3129\"}\n"
                           "  - {name: both, chain: [partner, corp]}\n"
                           "  - {name: any, pool: [corp, spare]}\n"
                           "  - {name: far, url: \"socks5://127.0.0.1:1082\", resolve: upstream}\n"
                           "rules:\n"
                           "  - {name: lan, action: allow, to: [\"*.lan\"]}\n"
                           "  - {name: partners, action: allow, to: [\"*.partner.example\"], via: both}\n"
                           "  - {name: web, action: allow, to: [\"*:443\"], via: any}\n"
                           "  - {name: dark, action: deny, to: [\"10.0.0.0/8\"]}\n"
                           "  - {name: remote, action: allow, to: [\"*.remote.example\"], via: far}\n";

TEST_F(commands, ExplainNamesTheRoute) {
  const std::string path = write(routed);
  command_result r = explain_command(path, "192.0.2.7", "db.partner.example:5432", "", "edge");
  EXPECT_NE(r.out.find("decision: allow by rule 'partners'\nroute: via both: partner -> corp\n"), std::string::npos)
      << r.out;
  r = explain_command(path, "192.0.2.7", "192.0.2.80:443", "", "edge");
  EXPECT_NE(r.out.find("route: via any: (corp | spare)\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.exit_code, exit_ok);
  r = explain_command(path, "192.0.2.7", "printer.lan:631", "", "edge");
  EXPECT_NE(r.out.find("route: direct\n"), std::string::npos) << r.out;
}

TEST_F(commands, ExplainDeniesNamesThatNeedAnAddressTheUpstreamResolves) {
  const std::string path = write(routed);
  const resolve_function resolve = [](std::string_view) {
    return std::vector<ip_address>{*parse_ip_address("192.0.2.9")};
  };
  const command_result r = explain_command(path, "192.0.2.7", "app.remote.example:80", "", "edge", resolve);
  EXPECT_NE(r.out.find("route: via far: far (the last hop resolves names)\ndenied: the rules needed the address, "
                       "which the upstream resolves itself\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.exit_code, exit_denied);
}

TEST_F(commands, CheckWarnsAboutAddressesTheGatewayNeverSees) {
  const command_result r =
      check_command(write(routed + "  - {name: far-nets, action: allow, to: [\"172.16.0.0/12\"], via: "
                                   "far}\n"));
  EXPECT_EQ(r.exit_code, exit_ok) << r.err;
  EXPECT_NE(r.err.find(":15:5: warning: rule 'remote' sends sessions via 'far', which resolves names itself "
                       "(resolve: upstream), but the earlier rule 'dark' decides on addresses: requests by name that "
                       "reach this rule are denied"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(":16:5: warning: rule 'far-nets' sends sessions via 'far', which resolves names itself "
                       "(resolve: upstream), but its to lists only networks"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace edgerelay::config
