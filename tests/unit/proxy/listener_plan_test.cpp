// What a reload does to the listeners: kept, renamed, moved, opened and closed, worked out from the
// two configs alone.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "config/load.hpp"
#include "proxy/runtime/listener_plan.hpp"

namespace edgerelay::proxy {
namespace {

config::config with_listeners(const std::string& listeners) {
  auto r = config::load_config_text("listeners:\n" + listeners +
                                        "backends:\n  - {name: sql, host: 127.0.0.1, portbase: 5000, kind: sql602}\n"
                                        "rules:\n  - {name: r, action: allow}\n",
                                    "gw.yaml");
  EXPECT_TRUE(r.value.has_value()) << listeners;
  return r.value.value_or(config::config{});
}

const listener_step& step_of(const listener_plan& plan, const std::string& name) {
  for (const auto& s : plan.steps) {
    if (s.name == name) return s;
  }
  throw std::runtime_error("no step for " + name);
}

using names = std::vector<std::string>;

TEST(ListenerPlan, UnchangedListenersKeepTheirAcceptorsEvenOnPortZero) {
  const auto cfg = with_listeners(
      "  - {name: a, bind: \"127.0.0.1:0\", protocols: [socks5]}\n"
      "  - {name: b, bind: \"127.0.0.1:1080\", protocols: [http]}\n");
  const auto plan = plan_listeners(cfg, cfg);
  EXPECT_TRUE(step_of(plan, "a").keep_acceptors);
  EXPECT_TRUE(step_of(plan, "b").keep_acceptors);
  EXPECT_TRUE(plan.close.empty());
}

TEST(ListenerPlan, RemovedClosesMovedReopensNewOpens) {
  const auto before = with_listeners(
      "  - {name: gone, bind: \"127.0.0.1:1080\", protocols: [socks5]}\n"
      "  - {name: moved, bind: \"127.0.0.1:1081\", protocols: [socks5]}\n");
  const auto after = with_listeners(
      "  - {name: moved, bind: \"127.0.0.1:2081\", protocols: [socks5]}\n"
      "  - {name: fresh, bind: \"127.0.0.1:0\", protocols: [socks5]}\n");
  const auto plan = plan_listeners(before, after);
  EXPECT_EQ(plan.close, (names{"gone", "moved"}));
  EXPECT_EQ(step_of(plan, "moved").predecessor, "moved");
  EXPECT_FALSE(step_of(plan, "moved").keep_acceptors);
  EXPECT_TRUE(step_of(plan, "fresh").predecessor.empty());
  EXPECT_FALSE(step_of(plan, "fresh").keep_acceptors);
}

TEST(ListenerPlan, RenameOnTheSameFixedAddressKeepsTheAcceptorsButNotOnPortZero) {
  const auto before = with_listeners(
      "  - {name: old, bind: \"127.0.0.1:1080\", protocols: [socks5]}\n"
      "  - {name: any, bind: \"127.0.0.1:0\", protocols: [socks5]}\n");
  const auto after = with_listeners(
      "  - {name: new, bind: \"127.0.0.1:1080\", protocols: [socks5]}\n"
      "  - {name: other, bind: \"127.0.0.1:0\", protocols: [socks5]}\n");
  const auto plan = plan_listeners(before, after);
  EXPECT_EQ(step_of(plan, "new").predecessor, "old");
  EXPECT_TRUE(step_of(plan, "new").keep_acceptors);
  EXPECT_TRUE(step_of(plan, "other").predecessor.empty()) << "two port-0 listeners never shared a port";
  EXPECT_EQ(plan.close, (names{"any"}));
}

TEST(ListenerPlan, SameAddressWrittenDifferentlyIsTheSame) {
  const auto before = with_listeners("  - {name: v6, bind: \"[::1]:1080\", protocols: [socks5]}\n");
  const auto after = with_listeners("  - {name: v6, bind: \"[0:0::1]:1080\", protocols: [socks5]}\n");
  EXPECT_TRUE(step_of(plan_listeners(before, after), "v6").keep_acceptors);
}

TEST(ListenerPlan, UdpBindSocketFollowsItsAddressNotItsListener) {
  const auto before = with_listeners(
      "  - {name: door, bind: \"127.0.0.1:5002\", forward: sql, udp_bind: \"127.0.0.1:5001\"}\n"
      "  - {name: socks, bind: \"127.0.0.1:1080\", protocols: [socks4], udp_bind: \"127.0.0.1:1079\"}\n");
  // door moves its TCP port but keeps its udp_bind; socks gives 1079 up to a new listener.
  auto after_text = with_listeners(
      "  - {name: door, bind: \"127.0.0.1:6002\", forward: sql, udp_bind: \"127.0.0.1:5001\"}\n"
      "  - {name: socks, bind: \"127.0.0.1:1080\", protocols: [socks4], udp_bind: \"127.0.0.1:2079\"}\n"
      "  - {name: fw, bind: \"127.0.0.1:1180\", protocols: [socks4], udp_bind: \"127.0.0.1:1079\"}\n");
  const auto plan = plan_listeners(before, after_text);
  EXPECT_FALSE(step_of(plan, "door").keep_acceptors);
  EXPECT_EQ(step_of(plan, "door").udp_from, "door");
  EXPECT_TRUE(step_of(plan, "socks").keep_acceptors);
  EXPECT_TRUE(step_of(plan, "socks").udp_from.empty()) << "a new udp_bind needs a new socket";
  EXPECT_EQ(step_of(plan, "fw").udp_from, "socks");
  EXPECT_TRUE(plan.close_udp.empty());
  EXPECT_EQ(plan.close, (names{"door"}));
}

}  // namespace
}  // namespace edgerelay::proxy
