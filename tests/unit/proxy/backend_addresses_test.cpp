// The resolved-address table of backend host names, and route_to_backend() on it: which target is
// which backend's session, by name, by host, by literal address and by an address a name resolved to.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/address.hpp"
#include "config/load.hpp"
#include "proxy/outbound/backend_addresses.hpp"
#include "proxy/outbound/connector.hpp"

namespace edgerelay::proxy {
namespace {

config::config with_backends(const std::string& backends) {
  auto r = config::load_config_text(
      "listeners:\n  - {name: l, bind: \"127.0.0.1:0\", protocols: [socks4]}\n"
      "backends:\n" +
          backends + "rules:\n  - {name: r, action: allow}\n",
      "gw.yaml");
  EXPECT_TRUE(r.value.has_value()) << backends;
  return r.value.value_or(config::config{});
}

config::ip_address ip(const char* text) {
  return *config::parse_ip_literal(text);
}

net::ip::address addr(const char* text) {
  return net::ip::make_address(text);
}

target by_address(const char* a, std::uint16_t port) {
  target t;
  t.address = addr(a);
  t.port = port;
  return t;
}

const std::string two_backends =
    "  - {name: sql, host: db.internal, portbase: 5001, kind: sql602}\n"
    "  - {name: lit, host: 10.9.0.7, portbase: 6001}\n";

TEST(BackendAddresses, TracksHostNamesOnlyAndIgnoresAnswersForOthers) {
  backend_addresses table;
  table.follow(with_backends(two_backends));
  EXPECT_EQ(table.names(), std::vector<std::string>{"db.internal"});
  table.store("db.internal", {addr("10.2.0.5"), addr("2001:db8::5")});
  table.store("elsewhere.example", {addr("10.2.0.6")});  // no backend has it: dropped
  const auto r = table.read();
  EXPECT_TRUE(r.resolves_to("db.internal", ip("10.2.0.5")));
  EXPECT_TRUE(r.resolves_to("DB.Internal", ip("2001:db8::5")));
  EXPECT_TRUE(r.resolves_to("db.internal", ip("::ffff:10.2.0.5")));  // mapped is the IPv4 address
  EXPECT_FALSE(r.resolves_to("db.internal", ip("10.2.0.6")));
  EXPECT_FALSE(r.resolves_to("elsewhere.example", ip("10.2.0.6")));
  EXPECT_FALSE(r.resolves_to("10.9.0.7", ip("10.9.0.7")));  // literals are not the table's
}

TEST(BackendAddresses, AMappedAnswerIsStoredAsIPv4) {
  backend_addresses table;
  table.follow(with_backends(two_backends));
  table.store("db.internal", {addr("::ffff:10.2.0.5")});
  EXPECT_TRUE(table.read().resolves_to("db.internal", ip("10.2.0.5")));
}

TEST(BackendAddresses, ANewAnswerReplacesTheLastAndAFailureMatchesNothing) {
  backend_addresses table;
  table.follow(with_backends(two_backends));
  table.store("db.internal", {addr("10.2.0.5")});
  table.store("db.internal", {addr("10.2.0.8")});
  EXPECT_FALSE(table.read().resolves_to("db.internal", ip("10.2.0.5")));
  EXPECT_TRUE(table.read().resolves_to("db.internal", ip("10.2.0.8")));
  table.store("db.internal", {});
  EXPECT_FALSE(table.read().resolves_to("db.internal", ip("10.2.0.8")));
}

TEST(BackendAddresses, AReloadKeepsKeptNamesAndForgetsRemovedOnes) {
  backend_addresses table;
  table.follow(with_backends(two_backends));
  table.store("db.internal", {addr("10.2.0.5")});
  // Same host under another backend name, plus a new host: the kept name keeps its answer.
  table.follow(
      with_backends("  - {name: renamed, host: db.internal, portbase: 7001}\n"
                    "  - {name: other, host: other.internal, portbase: 8001}\n"));
  EXPECT_EQ(table.names(), (std::vector<std::string>{"db.internal", "other.internal"}));
  EXPECT_TRUE(table.read().resolves_to("db.internal", ip("10.2.0.5")));
  EXPECT_FALSE(table.read().resolves_to("other.internal", ip("10.2.0.5")));
  table.follow(with_backends("  - {name: other, host: other.internal, portbase: 8001}\n"));
  EXPECT_FALSE(table.read().resolves_to("db.internal", ip("10.2.0.5")));
  // A lookup started for the removed name and answered late changes nothing.
  table.store("db.internal", {addr("10.2.0.5")});
  EXPECT_FALSE(table.read().resolves_to("db.internal", ip("10.2.0.5")));
  table.follow(with_backends(two_backends));
  EXPECT_FALSE(table.read().resolves_to("db.internal", ip("10.2.0.5")));  // back, but not yet looked up
}

TEST(BackendAddresses, TwoBackendsOnOneHostShareOneEntry) {
  backend_addresses table;
  table.follow(
      with_backends("  - {name: a, host: db.internal, portbase: 5001}\n"
                    "  - {name: b, host: DB.internal, portbase: 6001}\n"));
  EXPECT_EQ(table.names(), std::vector<std::string>{"db.internal"});
}

TEST(BackendAddresses, ResolveWithinLooksUpEveryNameAtStart) {
  backend_addresses table;
  table.follow(with_backends("  - {name: sql, host: localhost, portbase: 5001}\n"));
  const auto late = resolve_within(table, std::chrono::seconds(5));
  EXPECT_TRUE(late.empty());
  EXPECT_TRUE(table.read().resolves_to("localhost", ip("127.0.0.1")));
}

TEST(BackendAddresses, LookupHostAnswersWithEveryAddressAndLiteralsAsThemselves) {
  net::io_context ioc;
  std::vector<net::ip::address> named;
  std::vector<net::ip::address> literal;
  std::vector<net::ip::address> missing;
  net::co_spawn(
      ioc,
      [&]() -> net::awaitable<void> {
        named = co_await lookup_host("localhost");
        literal = co_await lookup_host("10.9.0.7");
        missing = co_await lookup_host("no such name");  // not a host name: the resolver refuses it
      },
      [](const std::exception_ptr& e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run_for(std::chrono::seconds(10));
  EXPECT_NE(std::find(named.begin(), named.end(), addr("127.0.0.1")), named.end());
  EXPECT_EQ(literal, std::vector<net::ip::address>{addr("10.9.0.7")});
  EXPECT_TRUE(missing.empty());
}

// ---------------------------------------------------------------------------------------------

TEST(RouteToBackend, ByNameOnAnyPortAndByHostOnPortbasePlusOne) {
  const auto cfg = with_backends(two_backends);
  target t;
  t.host = "SQL";
  t.port = 22;
  route_to_backend(cfg, nullptr, t);
  ASSERT_NE(t.backend, nullptr);
  EXPECT_EQ(t.backend->name, "sql");
  EXPECT_EQ(t.port, 22);  // left as asked: the rules decide on it

  target host;
  host.host = "db.internal";
  host.port = 5002;
  route_to_backend(cfg, nullptr, host);
  ASSERT_NE(host.backend, nullptr);
  EXPECT_EQ(host.backend->name, "sql");
  host.backend = nullptr;
  host.port = 5001;
  route_to_backend(cfg, nullptr, host);
  EXPECT_EQ(host.backend, nullptr);
}

TEST(RouteToBackend, ALiteralHostMatchesItsAddressOnPortbasePlusOneOnly) {
  const auto cfg = with_backends(two_backends);
  target t = by_address("10.9.0.7", 6002);
  route_to_backend(cfg, nullptr, t);
  ASSERT_NE(t.backend, nullptr);
  EXPECT_EQ(t.backend->name, "lit");
  for (const std::uint16_t port : {6001, 6003, 22}) {
    target other = by_address("10.9.0.7", port);
    route_to_backend(cfg, nullptr, other);
    EXPECT_EQ(other.backend, nullptr) << port;
  }
  target mapped = by_address("::ffff:10.9.0.7", 6002);
  route_to_backend(cfg, nullptr, mapped);
  EXPECT_NE(mapped.backend, nullptr);
  // A SOCKS5 domain or HTTP authority spelling the address is that address.
  target spelled;
  spelled.host = "10.9.0.7";
  spelled.port = 6002;
  route_to_backend(cfg, nullptr, spelled);
  EXPECT_NE(spelled.backend, nullptr);
}

TEST(RouteToBackend, AnAddressTheHostNameResolvedToIsThatBackend) {
  const auto cfg = with_backends(two_backends);
  backend_addresses table;
  table.follow(cfg);

  // Not resolved yet: the address is just an address.
  target before = by_address("10.2.0.5", 5002);
  route_to_backend(cfg, &table, before);
  EXPECT_EQ(before.backend, nullptr);

  table.store("db.internal", {addr("10.2.0.5"), addr("2001:db8::5")});
  for (const char* a : {"10.2.0.5", "2001:db8::5", "::ffff:10.2.0.5"}) {
    target t = by_address(a, 5002);
    route_to_backend(cfg, &table, t);
    ASSERT_NE(t.backend, nullptr) << a;
    EXPECT_EQ(t.backend->name, "sql") << a;
  }
  target spelled;
  spelled.host = "10.2.0.5";
  spelled.port = 5002;
  route_to_backend(cfg, &table, spelled);
  EXPECT_NE(spelled.backend, nullptr);

  // Another port of that address, another address, or no table: not the backend.
  target other_port = by_address("10.2.0.5", 5001);
  route_to_backend(cfg, &table, other_port);
  EXPECT_EQ(other_port.backend, nullptr);
  target other_address = by_address("10.2.0.6", 5002);
  route_to_backend(cfg, &table, other_address);
  EXPECT_EQ(other_address.backend, nullptr);
  target no_table = by_address("10.2.0.5", 5002);
  route_to_backend(cfg, nullptr, no_table);
  EXPECT_EQ(no_table.backend, nullptr);

  // The name stops resolving: its old address is no longer the backend.
  table.store("db.internal", {});
  target after = by_address("10.2.0.5", 5002);
  route_to_backend(cfg, &table, after);
  EXPECT_EQ(after.backend, nullptr);
}

TEST(RouteToBackend, TheFirstBackendInConfigOrderWins) {
  const auto cfg = with_backends(
      "  - {name: first, host: db.internal, portbase: 5001}\n"
      "  - {name: second, host: 10.2.0.5, portbase: 5001}\n");
  backend_addresses table;
  table.follow(cfg);
  table.store("db.internal", {addr("10.2.0.5")});
  target t = by_address("10.2.0.5", 5002);
  route_to_backend(cfg, &table, t);
  ASSERT_NE(t.backend, nullptr);
  EXPECT_EQ(t.backend->name, "first");
}

}  // namespace
}  // namespace edgerelay::proxy
