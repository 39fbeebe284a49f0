// decide() must not allocate: counts global operator new calls around it (this binary's own replacement).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "config/address.hpp"
#include "config/load.hpp"
#include "config/password.hpp"
#include "config/policy.hpp"

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
// Every form that memory from the forms above can reach must match them (ASan checks the pairing).
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size) {
  return operator new(size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace edgerelay::config {
namespace {

TEST(PolicyDecide, DoesNotAllocate) {
  const load_result loaded = load_config_text(
      "listeners: [{name: edge, bind: \"127.0.0.1:0\", protocols: [http]},\n"
      "            {name: door, bind: \"127.0.0.1:0\", protocols: [socks4]}]\n"
      "users: [{name: alice, password: \"" +
          hash_password("pw", 1000) +
          "\"}]\n"
          "rules:\n"
          "  - {name: a, action: deny, from: [\"2001:db8::/32\"], users: [alice], listeners: [door]}\n"
          "  - {name: b, action: deny, to: [\"10.0.0.0/8\", \"*.corp.example:443\", \"backend-x.internal\"]}\n"
          "  - {name: c, action: allow, to: [\"DB.internal.\"]}\n",
      "alloc.yaml");
  ASSERT_TRUE(loaded.value.has_value());
  const policy pol = policy::compile(*loaded.value);
  request req;
  req.source = *parse_ip_address("192.0.2.1");
  req.listener = "edge";
  req.host = "a-rather-long-host-name-that-would-not-fit-small-string-buffers.db.internal";
  req.port = 443;
  const ip_address dialled = *parse_ip_address("::ffff:10.1.2.3");

  const long before = allocations.load();
  EXPECT_GT(before, 0) << "the counting operator new is not in use";
  const decision first = pol.decide(req);  // needs_address
  req.address = dialled;
  const decision second = pol.decide(req);  // deny by b
  req.host = "10.9.9.9";                    // literal host, no address
  req.address.reset();
  const decision third = pol.decide(req);
  const long after = allocations.load();

  EXPECT_EQ(after - before, 0);
  EXPECT_EQ(first.result, verdict::needs_address);
  EXPECT_EQ(second.result, verdict::deny);
  EXPECT_EQ(second.rule_name, "b");
  EXPECT_EQ(third.rule_name, "b");
}

TEST(PolicyDecide, DoesNotAllocateWithTwentyThousandIndexedRules) {
  // Every table of the index in use: names, suffixes, v4 and v6 networks, sources, users,
  // listeners, backend references, and rules with no condition on the destination.
  config cfg = default_config();
  backend_config db;
  db.name = "db";
  db.host = "db.internal";
  db.portbase = 5001;
  cfg.backends.push_back(db);
  cfg.rules.clear();
  for (int i = 0; i < 20'000; ++i) {
    rule_config r;
    r.name = "r" + std::to_string(i);
    r.allow = i % 2 == 0;
    const std::string n = std::to_string(i);
    switch (i % 8) {
      case 0: r.to = {"h" + n + ".example"}; break;
      case 1: r.to = {"*.s" + n + ".example:443"}; break;
      case 2: r.to = {"10." + std::to_string(i % 256) + "." + std::to_string(i / 256 % 256) + ".0/24"}; break;
      case 3: r.to = {"[2001:db8:" + std::to_string(i % 65536) + "::/48]:22"}; break;
      case 4: r.from = {"192.168." + std::to_string(i % 256) + ".0/24"}; break;
      case 5: r.users = {"u" + n}; break;
      case 6: r.listeners = {"l" + n}; break;
      default:
        r.to = {"backend:db"};
        r.from = {"172.16." + std::to_string(i % 256) + ".0/24"};
        break;
    }
    cfg.rules.push_back(std::move(r));
  }
  const policy pol = policy::compile(cfg);
  struct probe {
    const char* source;
    const char* user;
    const char* listener;
    const char* host;
    const char* address;  ///< "" for none
    std::uint16_t port;
  };
  const probe probes[] = {
      {"198.51.100.1", "", "edge", "h800.example", "203.0.113.1", 80},
      {"198.51.100.1", "", "edge", "WWW.S809.EXAMPLE.", "203.0.113.1", 443},
      {"198.51.100.1", "", "edge", "", "10.10.3.7", 80},
      {"198.51.100.1", "", "edge", "", "2001:db8:11::1", 22},
      {"192.168.12.9", "", "edge", "a-long-name-that-no-rule-names-anywhere-at-all.example", "", 80},
      {"198.51.100.1", "u13", "l14", "nothing.example", "203.0.113.1", 443},
      {"172.16.7.7", "", "edge", "db", "198.18.0.1", 5002},
      {"::ffff:198.51.100.1", "", "edge", "no.such.name.example", "", 9},
  };
  std::vector<request> requests;
  for (const probe& p : probes) {
    request req;
    req.source = *parse_ip_address(p.source);
    req.user = p.user;
    req.listener = p.listener;
    req.host = p.host;
    if (*p.address != '\0') {
      req.address = *parse_ip_address(p.address);
    }
    req.port = p.port;
    requests.push_back(req);
  }
  std::vector<decision> results(requests.size());
  const long before = allocations.load();
  for (std::size_t i = 0; i < requests.size(); ++i) {
    results[i] = pol.decide(requests[i]);
  }
  const long after = allocations.load();
  EXPECT_EQ(after - before, 0);
  // The index found the rules it should (so the requests above went through the tables).
  EXPECT_EQ(results[0].rule_name, "r800");
  EXPECT_EQ(results[1].rule_name, "r809");
  EXPECT_EQ(results[2].rule_name, "r778");               // 10.10.3.0/24: i % 256 == 10, i / 256 == 3
  EXPECT_EQ(results[3].rule_name, "r11");                // 2001:db8:11::/48 on port 22
  EXPECT_EQ(results[4].result, verdict::needs_address);  // r2, a network, applies to every name
  EXPECT_EQ(results[5].rule_name, "r13");
  EXPECT_EQ(results[6].rule_name, "r7");  // backend:db from 172.16.7.0/24
  EXPECT_EQ(results[7].result, verdict::needs_address);
}

}  // namespace
}  // namespace edgerelay::config
