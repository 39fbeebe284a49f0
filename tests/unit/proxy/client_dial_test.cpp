// The client plan's pure parts: the back-off schedule, which failures are retried, and how a
// target is named to the gateway; how a refused polling open is read.
#include <gtest/gtest.h>

#include "config/model.hpp"
#include "proxy/outbound/gateway/client_dial.hpp"
#include "proxy/outbound/gateway/polling_transport.hpp"

namespace edgerelay::proxy::gateway {
namespace {

using std::chrono::milliseconds;

TEST(ClientBackoff, DoublesToTheCapWithJitterInTheUpperHalf) {
  const backoff_settings b{milliseconds(200), milliseconds(3000), 6};
  EXPECT_EQ(backoff_delay(b, 1, 1.0), milliseconds(200));
  EXPECT_EQ(backoff_delay(b, 2, 1.0), milliseconds(400));
  EXPECT_EQ(backoff_delay(b, 4, 1.0), milliseconds(1600));
  EXPECT_EQ(backoff_delay(b, 5, 1.0), milliseconds(3000));
  EXPECT_EQ(backoff_delay(b, 60, 1.0), milliseconds(3000)) << "no overflow for large attempts";
  EXPECT_EQ(backoff_delay(b, 1, 0.0), milliseconds(100));
  EXPECT_EQ(backoff_delay(b, 3, 0.5), milliseconds(600));
  EXPECT_EQ(backoff_delay(b, 3, 7.0), milliseconds(800)) << "the draw is clamped";
}

TEST(ClientBackoff, OnlyUnreachableIsRetried) {
  auto failed = [](std::string hop, outcome o) {
    opened_tunnel t;
    t.result = o;
    t.failed_hop = std::move(hop);
    return t;
  };
  EXPECT_TRUE(worth_retrying(failed("gateway", outcome::connection_refused)));
  EXPECT_TRUE(worth_retrying(failed("proxy", outcome::connect_timeout)));
  EXPECT_TRUE(worth_retrying(failed("connect", outcome::host_unreachable)));  // 502 from the proxy
  EXPECT_FALSE(worth_retrying(failed("proxy_auth", outcome::general_failure)));
  EXPECT_FALSE(worth_retrying(failed("tls_verify", outcome::backend_tls_failed)));
  EXPECT_FALSE(worth_retrying(failed("socks5", outcome::denied)));
  EXPECT_FALSE(worth_retrying(failed("", outcome::success)));
}

TEST(ClientTarget, NamesBackendsHostsAndAddresses) {
  config::backend_config sql;
  sql.name = "sql";
  target t;
  t.backend = &sql;
  EXPECT_EQ(tunnel_target_of(t), "backend:sql");
  target named;
  named.host = "db.example.com";
  named.port = 5432;
  EXPECT_EQ(tunnel_target_of(named), "db.example.com:5432");
  target v6;
  v6.address = net::ip::make_address("2001:db8::7");
  v6.port = 22;
  EXPECT_EQ(tunnel_target_of(v6), "[2001:db8::7]:22");
}

}  // namespace
}  // namespace edgerelay::proxy::gateway

namespace edgerelay::proxy::gateway {
namespace {

// A refusal the gateway wrote is its answer about the target (auto tries no other transport); what
// a proxy or a listener without polling answers names the hop that failed.
TEST(ClientPolling, RefusalsOfTheOpen) {
  EXPECT_EQ(refusal_of_open(403, true).result, outcome::denied);
  EXPECT_EQ(refusal_of_open(403, true).failed_hop, "");
  EXPECT_EQ(refusal_of_open(502, true).result, outcome::host_unreachable);
  EXPECT_EQ(refusal_of_open(502, true).failed_hop, "");
  EXPECT_EQ(refusal_of_open(504, true).result, outcome::connect_timeout);
  EXPECT_EQ(refusal_of_open(401, true).failed_hop, "gateway_auth");
  EXPECT_EQ(refusal_of_open(404, true).failed_hop, "polling");
  EXPECT_EQ(refusal_of_open(403, false).failed_hop, "polling");  // Squid's access denied
  EXPECT_EQ(refusal_of_open(407, false).failed_hop, "proxy_auth");
  opened_tunnel t;
  t.failed_hop = "polling";
  EXPECT_FALSE(worth_retrying(t));
}

}  // namespace
}  // namespace edgerelay::proxy::gateway
