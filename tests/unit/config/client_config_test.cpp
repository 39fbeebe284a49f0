// edgerelay client's config: the gateway and proxy keys, the client's defaults, the proxy
// environment (https_proxy, http_proxy, no_proxy) and password files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "config/client.hpp"
#include "config/address.hpp"
#include "config/load.hpp"
#include "config/policy.hpp"

namespace edgerelay::config {
namespace {

using lines = std::vector<std::string>;

load_result load_client(const std::string& yaml) {
  return load_config_text(yaml, "client.yaml", load_mode::client);
}

lines errors_of(const std::string& yaml) {
  lines out;
  for (const auto& d : load_client(yaml).diagnostics) {
    if (d.level == severity::error) out.push_back(to_string(d));
  }
  return out;
}

const char* const doors =
    "listeners:\n"
    "  - {name: local, bind: \"127.0.0.1:1080\", protocols: [socks5, socks4, http]}\n";

TEST(ClientConfig, ReadsGatewayAndProxy) {
  const auto r = load_client(std::string(doors) +
                             "gateway:\n"
                             "  address: \"gw.example.com:443\"\n"
                             "  tls: {ca: gw-ca.pem, server_name: gw.example.com}\n"
                             "  transport: socks5\n"
                             "  path: /tunnel\n"
                             "  user: alice\n"
                             "  password_file: alice.secret\n"
                             "proxy: {url: \"http://proxy.corp:3128\", user: bob, password_file: bob.secret}\n");
  ASSERT_TRUE(r.value) << (r.diagnostics.empty() ? "" : to_string(r.diagnostics.front()));
  ASSERT_TRUE(r.value->client);
  const auto& gw = r.value->client->gateway;
  EXPECT_EQ(gw.host, "gw.example.com");
  EXPECT_EQ(gw.port, 443);
  ASSERT_TRUE(gw.tls);
  EXPECT_EQ(gw.tls->ca, "gw-ca.pem");
  EXPECT_EQ(gw.tls->server_name, "gw.example.com");
  EXPECT_EQ(gw.transport, gateway_transport::socks5);
  EXPECT_EQ(gw.path, "/tunnel");
  EXPECT_EQ(gw.user, "alice");
  ASSERT_TRUE(r.value->client->proxy);
  EXPECT_EQ(r.value->client->proxy->host, "proxy.corp");
  EXPECT_EQ(r.value->client->proxy->port, 3128);
  EXPECT_EQ(r.value->client->proxy->user, "bob");
}

TEST(ClientConfig, DefaultsAdmitOnlyLoopbackClients) {
  const auto r = load_client(std::string(doors) + "gateway: {address: \"192.0.2.1:443\"}\n");
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->client->gateway.transport, gateway_transport::automatic);
  EXPECT_EQ(r.value->client->gateway.path, "/edgerelay");
  const policy pol = policy::compile(*r.value);
  request local{*parse_ip_address("127.0.0.1"), "", "local", "db.example.com", std::nullopt, 5432};
  EXPECT_EQ(pol.decide(local).result, verdict::allow);
  request outside{*parse_ip_address("10.1.2.3"), "", "local", "db.example.com", std::nullopt, 5432};
  EXPECT_EQ(pol.decide(outside).result, verdict::deny);
}

TEST(ClientConfig, ForwardNamesAGatewayBackend) {
  const auto r = load_client(
      "listeners:\n"
      "  - {name: sql, bind: \"127.0.0.1:5002\", forward: sql602}\n"
      "gateway: {address: \"192.0.2.1:443\"}\n");
  ASSERT_TRUE(r.value) << (r.diagnostics.empty() ? "" : to_string(r.diagnostics.front()));
  ASSERT_EQ(r.value->backends.size(), 1U);
  EXPECT_EQ(r.value->backends[0].name, "sql602");
  // The gateway's mode still refuses a forward door to a backend it does not define.
  const auto g = load_config_text(
      "listeners:\n"
      "  - {name: sql, bind: \"127.0.0.1:5002\", forward: sql602}\n"
      "rules: [{name: r, action: allow}]\n",
      "gw.yaml");
  EXPECT_FALSE(g.value);
}

TEST(ClientConfig, ErrorsNameLineAndColumn) {
  EXPECT_EQ(errors_of(doors), lines{"client.yaml:1:1: edgerelay client needs a gateway (gateway: {address: "
                                    "\"gw.example.com:443\", ...})"});
  EXPECT_EQ(
      errors_of(std::string(doors) + "gateway: {address: gw.example.com}\n"),
      lines{"client.yaml:3:20: bad gateway address 'gw.example.com': missing ':port' (expected \"host:port\", e.g. "
            "gw.example.com:443)"});
  EXPECT_EQ(errors_of(std::string(doors) + "gateway: {address: \"gw:443\", transport: carrier-pigeon}\n"),
            lines{"client.yaml:3:41: bad value 'carrier-pigeon' for gateway transport (expected one of: auto, "
                  "websocket, polling, socks5)"});
  EXPECT_EQ(errors_of(std::string(doors) + "gateway: {address: \"gw:443\", user: alice}\n"),
            lines{"client.yaml:3:10: gateway user 'alice' needs a password_file"});
  EXPECT_EQ(errors_of(std::string(doors) + "gateway: {address: \"gw:443\"}\nproxy: {url: \"http://bob:pw@p:3128\"}\n"),
            lines{"client.yaml:4:14: bad proxy url 'http://bob:pw@p:3128': credentials in the url are refused (use "
                  "user and password_file)"});
  EXPECT_EQ(errors_of(std::string(doors) + "gateway: {address: \"gw:443\"}\nproxy: {url: \"https://p:3128\"}\n"),
            lines{"client.yaml:4:14: bad proxy url 'https://p:3128': scheme 'https' is not supported (expected "
                  "http://host:port; the gateway's own TLS runs inside the proxy's CONNECT)"});
  EXPECT_EQ(errors_of(std::string(doors) + "gateway: {address: \"gw:443\", path: \"no-slash\"}\n"),
            lines{"client.yaml:3:36: bad gateway path 'no-slash' (expected a path like /edgerelay: starts with '/', "
                  "no spaces, '?', '#' or '%')"});
  EXPECT_EQ(errors_of(std::string(doors) + "gateway: {address: \"gw:443\", tls: {cert: c.pem}}\n"),
            lines{"client.yaml:3:35: gateway tls needs both cert and key for a client certificate, or neither"});
}

TEST(ClientConfig, GatewayKeysAreNotTheGatewaysOwn) {
  const auto r = load_config_text(std::string(doors) + "gateway: {address: \"gw:443\"}\n", "gw.yaml");
  ASSERT_FALSE(r.value);
  std::string all;
  for (const auto& d : r.diagnostics) all += to_string(d) + "\n";
  EXPECT_NE(all.find("gw.yaml:3:1: unknown key 'gateway' in config"), std::string::npos) << all;
}

TEST(ClientConfig, UdpBindLoadsForInBandBreaks) {
  const auto e = errors_of(
      "listeners:\n"
      "  - {name: local, bind: \"127.0.0.1:1080\", protocols: [socks4], udp_bind: \"127.0.0.1:1079\"}\n"
      "gateway: {address: \"gw:443\"}\n");
  EXPECT_EQ(e, lines{});
}

using env_map = std::map<std::string, std::string, std::less<>>;

effective_proxy proxy_with(const client_config& c, const env_map& env) {
  return proxy_for(c, [&](std::string_view name) -> std::optional<std::string> {
    const auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

client_config gateway_at(std::string host, bool tls) {
  client_config c;
  c.gateway.host = std::move(host);
  c.gateway.port = 443;
  if (tls) c.gateway.tls.emplace();
  return c;
}

TEST(ClientProxy, ConfigWinsOverEnvironment) {
  client_config c = gateway_at("gw.example.com", true);
  c.proxy = parse_proxy_url("http://proxy.corp:3128");
  const auto p = proxy_with(c, {{"https_proxy", "http://other:8080"}});
  ASSERT_TRUE(p.proxy);
  EXPECT_EQ(p.proxy->host, "proxy.corp");
  EXPECT_EQ(p.source, "config");
}

TEST(ClientProxy, TlsGatewayTakesHttpsProxy) {
  const auto p = proxy_with(gateway_at("gw.example.com", true),
                            {{"https_proxy", "http://squid:3128/"}, {"http_proxy", "http://plain:80"}});
  ASSERT_TRUE(p.proxy);
  EXPECT_EQ(p.proxy->host, "squid");
  EXPECT_EQ(p.proxy->port, 3128);
  EXPECT_EQ(p.source, "https_proxy");
  const auto upper = proxy_with(gateway_at("gw.example.com", true), {{"HTTPS_PROXY", "http://squid:3128"}});
  EXPECT_EQ(upper.source, "HTTPS_PROXY");
}

TEST(ClientProxy, PlainGatewayTakesLowerCaseHttpProxyOnly) {
  const auto p = proxy_with(gateway_at("gw.example.com", false), {{"http_proxy", "http://plain:80"}});
  ASSERT_TRUE(p.proxy);
  EXPECT_EQ(p.proxy->host, "plain");
  EXPECT_FALSE(proxy_with(gateway_at("gw.example.com", false), {{"HTTP_PROXY", "http://plain:80"}}).proxy);
}

TEST(ClientProxy, NoProxyExemptsTheGateway) {
  const env_map base{{"https_proxy", "http://squid:3128"}};
  for (const char* np :
       {"*", "gw.example.com", ".example.com", "example.com", "other, gw.example.com:443", "*.example.com"}) {
    env_map env = base;
    env["no_proxy"] = np;
    EXPECT_FALSE(proxy_with(gateway_at("gw.example.com", true), env).proxy) << np;
  }
  for (const char* np : {"other.com", "w.example.com", "xample.com", ""}) {
    env_map env = base;
    env["NO_PROXY"] = np;
    EXPECT_TRUE(proxy_with(gateway_at("gw.example.com", true), env).proxy) << np;
  }
  EXPECT_TRUE(no_proxy_matches("10.0.0.1", "10.0.0.1"));
  EXPECT_TRUE(no_proxy_matches("[::1]:443", "::1"));
  EXPECT_FALSE(no_proxy_matches("10.0.0.1", "10.0.0.10"));
}

TEST(ClientProxy, MalformedVariableIsAnError) {
  const auto p = proxy_with(gateway_at("gw.example.com", true), {{"https_proxy", "socks5://x:1080"}});
  EXPECT_FALSE(p.proxy);
  EXPECT_NE(p.error.find("https_proxy is not a usable proxy: scheme 'socks5' is not supported"), std::string::npos)
      << p.error;
}

TEST(ClientSecret, ReadsFirstLineAndNamesThePathOnErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("edgerelay-secret-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto good = (dir / "good").string();
  std::ofstream(good) << "s3cret\nignored\n";
  EXPECT_EQ(read_secret_file(good), "s3cret");
  const auto empty = (dir / "empty").string();
  std::ofstream(empty) << "\n";
  std::string why;
  EXPECT_FALSE(read_secret_file(empty, &why));
  EXPECT_EQ(why, empty + ": the password file is empty (expected the password on its first line)");
  EXPECT_FALSE(read_secret_file((dir / "missing").string(), &why));
  EXPECT_EQ(why.rfind((dir / "missing").string() + ": cannot read the password file", 0), 0U) << why;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgerelay::config
