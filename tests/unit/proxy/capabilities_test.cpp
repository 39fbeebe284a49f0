// Configured features this build does not run stop the gateway instead of being ignored.
#include <gtest/gtest.h>

#include "config/load.hpp"
#include "proxy/runtime/capabilities.hpp"

namespace edgerelay::proxy {
namespace {

config::config load(const std::string& yaml) {
  auto r = config::load_config_text(yaml, "gw.yaml");
  EXPECT_TRUE(r.value.has_value());
  return r.value.value_or(config::config{});
}

TEST(UnsupportedFeatures, BuiltInDefaultRuns) {
  EXPECT_TRUE(unsupported_features(config::default_config()).empty());
}

TEST(UnsupportedFeatures, ProxyProtocolListenerAndSendProxyRun) {
  const auto cfg = load(R"(listeners:
  - name: edge
    bind: "127.0.0.1:0"
    protocols: [http]
    proxy_protocol: {from: [127.0.0.1]}
backends:
  - {name: db, host: 127.0.0.1, portbase: 5000, send_proxy: v2}
rules:
  - {name: r, action: allow}
)");
  EXPECT_TRUE(unsupported_features(cfg).empty());
}

TEST(UnsupportedFeatures, ShippedExampleRuns) {
  auto loaded = config::load_config_file(EDGERELAY_EXAMPLE_CONFIG);
  ASSERT_TRUE(loaded.value.has_value());
  EXPECT_TRUE(unsupported_features(*loaded.value).empty());
}

TEST(UnsupportedFeatures, TlsListenersAndBackendsRun) {
  const auto cfg = load(R"(listeners:
  - {name: edge, bind: "127.0.0.1:0", protocols: [http], tls: {cert: a.pem, key: a.key}}
backends:
  - {name: db, host: 127.0.0.1, portbase: 5000, tls: {ca: ca.pem}}
rules:
  - {name: r, action: allow}
)");
  EXPECT_TRUE(unsupported_features(cfg).empty());
}

TEST(UnsupportedFeatures, ViaRuleRuns) {
  const auto cfg = load(R"(listeners:
  - {name: edge, bind: "127.0.0.1:0", protocols: [socks5]}
upstreams:
  - {name: corp, url: "http://127.0.0.1:3128"}
rules:
  - {name: web, action: allow, via: corp}
)");
  EXPECT_TRUE(unsupported_features(cfg).empty());
}

}  // namespace
}  // namespace edgerelay::proxy
