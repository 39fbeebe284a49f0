// decide() must not allocate: counts global operator new calls around it (this binary's own replacement).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

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

}  // namespace
}  // namespace edgerelay::config
