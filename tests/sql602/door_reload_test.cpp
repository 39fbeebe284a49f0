// A 602SQL door's udp_bind socket follows its listener through reloads: moved with it (the
// discovery reply names the door's new port), closed when the listener goes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/harness.hpp"
#include "tests/sql602/sql602_sim.hpp"

namespace edgerelay::testing {
namespace {

using namespace std::chrono_literals;

std::string config_with(std::uint16_t portbase, const std::string& door) {
  return R"(
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
)" + door +
         R"(
backends:
  - {name: sql, host: 127.0.0.1, portbase: )" +
         std::to_string(portbase) + R"(, kind: sql602}
rules:
  - {name: to-sql, action: allow, from: ["127.0.0.0/8"], to: ["backend:sql"]}
log: {level: error, access: off}
)";
}

/// A port on 127.0.0.1 that nobody holds now, for `protocol` (the kernel's pick, released again).
template <class Socket>
std::uint16_t free_port() {
  net::io_context ioc;
  Socket s(ioc, typename Socket::endpoint_type(net::ip::address_v4::loopback(), 0));
  return s.local_endpoint().port();
}

/// Whether `port` on 127.0.0.1 can be bound for UDP now, i.e. the gateway no longer holds it.
bool udp_port_free(std::uint16_t port) {
  net::io_context ioc;
  udp::socket s(ioc, udp::v4());
  error_code ec;
  s.bind(udp::endpoint(net::ip::address_v4::loopback(), port), ec);
  return !ec;
}

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 5s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST(Sql602DoorReload, UdpBindMovesWithItsListenerAndClosesWithIt) {
  sql602::server db;
  config_file file(
      config_with(db.portbase(), R"(  - {name: door, bind: "127.0.0.1:0", forward: sql, udp_bind: "127.0.0.1:0"})"));
  auto gw = gateway::from_file(file.path());
  const udp::endpoint first_udp = gw->server().udp_endpoint_of("door");
  ASSERT_TRUE(sql602::discover(first_udp, 3s));

  const auto door_port = free_port<tcp::acceptor>();
  const auto udp_port = free_port<udp::socket>();
  file.write(config_with(db.portbase(), "  - {name: door, bind: \"127.0.0.1:" + std::to_string(door_port) +
                                            "\", forward: sql, udp_bind: \"127.0.0.1:" + std::to_string(udp_port) +
                                            "\"}"));
  gw->server().reload();
  ASSERT_TRUE(eventually([&] { return gw->endpoint("door").port() == door_port; }));
  EXPECT_EQ(gw->server().udp_endpoint_of("door").port(), udp_port);
  const auto reply = sql602::discover(gw->server().udp_endpoint_of("door"), 3s);
  ASSERT_TRUE(reply);
  const std::string named = std::to_string(door_port - 1);
  EXPECT_NE(std::search(reply->first.begin(), reply->first.end(), named.begin(), named.end()), reply->first.end())
      << "the discovery reply must name the moved door's port - 1";
  EXPECT_TRUE(udp_port_free(first_udp.port())) << "the old udp_bind socket must be closed";

  file.write(config_with(db.portbase(), ""));
  gw->server().reload();
  ASSERT_TRUE(eventually([&] {
    try {
      gw->endpoint("door");
      return false;
    } catch (const std::out_of_range&) {
      return true;
    }
  }));
  EXPECT_THROW(gw->server().udp_endpoint_of("door"), std::out_of_range);
  EXPECT_TRUE(udp_port_free(udp_port)) << "a removed listener's udp_bind socket must be closed";
  // The workers close their acceptors just after the reload is committed.
  EXPECT_TRUE(eventually([&] {
    try {
      client c(tcp::endpoint(net::ip::address_v4::loopback(), door_port));
      return false;
    } catch (const std::exception&) {
      return true;
    }
  })) << "a removed listener must refuse connections";
}

}  // namespace
}  // namespace edgerelay::testing
