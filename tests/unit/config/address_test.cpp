// IP, CIDR, endpoint, port range, host and `to` pattern parsing.
#include <gtest/gtest.h>

#include "config/address.hpp"

namespace edgerelay::config {
namespace {

std::string round_trip(std::string_view text) {
  auto a = parse_ip_address(text);
  return a ? to_string(*a) : "<invalid>";
}

TEST(AddressParse, Ipv4AndIpv6RoundTrip) {
  EXPECT_EQ(round_trip("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(round_trip("255.255.255.255"), "255.255.255.255");
  EXPECT_EQ(round_trip("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  EXPECT_EQ(round_trip("::"), "::");
  EXPECT_EQ(round_trip("::1"), "::1");
  EXPECT_EQ(round_trip("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");  // longest zero run
  EXPECT_EQ(round_trip("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
  EXPECT_EQ(round_trip("2001:db8:1:1:1:1:0:1"), "2001:db8:1:1:1:1:0:1");  // a single zero is not compressed
  EXPECT_EQ(round_trip("::ffff:192.0.2.1"), "192.0.2.1");                 // folded
}

TEST(AddressParse, RejectsMalformed) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.4 ", "::1%eth0", "[::1]",
                          "gggg::", "1:2:3:4:5:6:7:8:9", "example.com"}) {
    EXPECT_FALSE(parse_ip_address(bad).has_value()) << bad;
  }
}

ip_address addr(std::string_view text) {
  const auto a = parse_ip_address(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ip_address{});
}

// ::ffff:a.b.c.d as raw socket bytes give it, not folded by the parser.
ip_address unfolded_mapped(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  ip_address out;
  out.v6 = true;
  out.bytes[10] = 0xff;
  out.bytes[11] = 0xff;
  out.bytes[12] = a;
  out.bytes[13] = b;
  out.bytes[14] = c;
  out.bytes[15] = d;
  return out;
}

TEST(AddressPredicates, UnspecifiedRange) {
  for (const char* yes : {"0.0.0.0", "0.0.0.1", "0.255.255.255", "0.1.2.3", "::", "::ffff:0.0.0.0", "::ffff:0.9.9.9",
                          "0:0:0:0:0:0:0:0"}) {
    EXPECT_TRUE(is_unspecified_range(addr(yes))) << yes;
  }
  for (const char* no : {"1.0.0.0", "127.0.0.1", "10.0.0.0", "255.255.255.255", "::1", "::ffff:1.0.0.0",
                         "1::", "::0.0.0.1", "::ffff:0:0:0", "64:ff9b::", "fe80::"}) {
    EXPECT_FALSE(is_unspecified_range(addr(no))) << no;
  }
  EXPECT_TRUE(is_unspecified_range(unfolded_mapped(0, 0, 0, 0)));
  EXPECT_TRUE(is_unspecified_range(unfolded_mapped(0, 1, 2, 3)));
  EXPECT_FALSE(is_unspecified_range(unfolded_mapped(127, 0, 0, 1)));
  EXPECT_TRUE(is_unspecified_range(ip_address{}));  // the default value is 0.0.0.0
}

TEST(AddressPredicates, Multicast) {
  for (const char* yes : {"224.0.0.0", "224.0.0.1", "239.255.255.255", "230.1.2.3", "ff00::", "ff02::1", "ff05::1:3",
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:224.0.0.1"}) {
    EXPECT_TRUE(is_multicast(addr(yes))) << yes;
  }
  for (const char* no : {"223.255.255.255", "240.0.0.0", "255.255.255.255", "0.0.0.0", "127.0.0.1", "fe80::1",
                         "feff::", "::", "::1", "::ffff:223.0.0.1", "::224.0.0.1"}) {
    EXPECT_FALSE(is_multicast(addr(no))) << no;
  }
  EXPECT_TRUE(is_multicast(unfolded_mapped(239, 1, 1, 1)));
  EXPECT_FALSE(is_multicast(unfolded_mapped(10, 1, 1, 1)));
}

TEST(AddressPredicates, LimitedBroadcast) {
  EXPECT_TRUE(is_limited_broadcast(addr("255.255.255.255")));
  EXPECT_TRUE(is_limited_broadcast(addr("::ffff:255.255.255.255")));
  EXPECT_TRUE(is_limited_broadcast(unfolded_mapped(255, 255, 255, 255)));
  for (const char* no : {"255.255.255.254", "254.255.255.255", "10.255.255.255", "0.0.0.0", "224.0.0.1",
                         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:255.255.255.0", "::255.255.255.255"}) {
    EXPECT_FALSE(is_limited_broadcast(addr(no))) << no;
  }
}

TEST(AddressParse, LiteralAcceptsBrackets) {
  ASSERT_TRUE(parse_ip_literal("[::1]").has_value());
  EXPECT_TRUE(parse_ip_literal("[::1]")->v6);
  EXPECT_FALSE(parse_ip_literal("[10.0.0.1]").has_value());
  EXPECT_TRUE(parse_ip_literal("10.0.0.1").has_value());
}

TEST(AddressCidr, ParsesAndContains) {
  auto net = parse_cidr("10.1.0.0/16");
  ASSERT_TRUE(net);
  EXPECT_EQ(to_string(*net), "10.1.0.0/16");
  EXPECT_TRUE(contains(*net, *parse_ip_address("10.1.200.3")));
  EXPECT_FALSE(contains(*net, *parse_ip_address("10.2.0.0")));
  EXPECT_EQ(to_string(*parse_cidr("192.0.2.7")), "192.0.2.7/32");
  EXPECT_EQ(to_string(*parse_cidr("::1")), "::1/128");
  EXPECT_EQ(to_string(*parse_cidr("::ffff:10.0.0.0/104")), "10.0.0.0/8");
  EXPECT_TRUE(contains(*parse_cidr("0.0.0.0/0"), *parse_ip_address("1.2.3.4")));
  EXPECT_FALSE(contains(*parse_cidr("::/0"), *parse_ip_address("1.2.3.4")));
  EXPECT_TRUE(contains(*parse_cidr("10.0.0.0/8"), *parse_cidr("10.1.0.0/16")));
  EXPECT_FALSE(contains(*parse_cidr("10.1.0.0/16"), *parse_cidr("10.0.0.0/8")));
}

TEST(AddressCidr, ErrorsSayWhy) {
  std::string why;
  EXPECT_FALSE(parse_cidr("10.0.0.0/33", &why));
  EXPECT_EQ(why, "prefix length must be 0-32 for IPv4");
  EXPECT_FALSE(parse_cidr("2001:db8::/129", &why));
  EXPECT_EQ(why, "prefix length must be 0-128 for IPv6");
  EXPECT_FALSE(parse_cidr("10.1.2.3/16", &why));
  EXPECT_EQ(why, "host bits are set (did you mean 10.1.0.0/16?)");
  EXPECT_FALSE(parse_cidr("10.0.0/8", &why));
  EXPECT_EQ(why, "'10.0.0' is not an IP address");
  EXPECT_FALSE(parse_cidr("10.0.0.0/", &why));
  EXPECT_FALSE(parse_cidr("10.0.0.0/-1", &why));
  EXPECT_FALSE(parse_cidr("10.0.0.0/08x", &why));
}

TEST(AddressEndpoint, ParsesBindForms) {
  auto e = parse_endpoint("0.0.0.0:80");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "0.0.0.0");
  EXPECT_EQ(e->port, 80);
  e = parse_endpoint("[::1]:0");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 0);
  EXPECT_EQ(parse_endpoint("127.0.0.1:65535")->port, 65535);
  std::string why;
  EXPECT_FALSE(parse_endpoint("127.0.0.1:65536", &why));
  EXPECT_EQ(why, "port '65536' must be a number 0-65535");
  EXPECT_FALSE(parse_endpoint("::1:80", &why));
  EXPECT_EQ(why, "an IPv6 address needs brackets before a port, as in [::1]:1080");
  EXPECT_FALSE(parse_endpoint("localhost:80", &why));
  EXPECT_EQ(why, "'localhost' is not an IP address");
  EXPECT_FALSE(parse_endpoint("127.0.0.1", &why));
  EXPECT_EQ(why, "missing ':port'");
  EXPECT_FALSE(parse_endpoint("[10.0.0.1]:80", &why));
}

TEST(AddressEndpoint, HostPortAcceptsNames) {
  auto t = parse_host_port("DB.internal:5002");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "DB.internal");
  EXPECT_EQ(t->port, 5002);
  EXPECT_EQ(parse_host_port("[2001:db8::1]:443")->host, "2001:db8::1");
  EXPECT_FALSE(parse_host_port("bad host:80"));
  EXPECT_FALSE(parse_host_port("host"));
}

TEST(AddressPorts, RangesAndEdges) {
  EXPECT_EQ(parse_port_range("443"), (port_range{443, 443}));
  EXPECT_EQ(parse_port_range("5000-5010"), (port_range{5000, 5010}));
  EXPECT_EQ(parse_port_range("0-65535"), port_range{});
  EXPECT_FALSE(parse_port_range("5010-5000"));
  EXPECT_FALSE(parse_port_range("65536"));
  EXPECT_FALSE(parse_port_range("1-"));
  EXPECT_FALSE(parse_port_range("+1"));
  EXPECT_FALSE(parse_port(""));
  EXPECT_EQ(parse_port("00080"), 80);
}

TEST(AddressHost, NormalizeAndCompare) {
  EXPECT_EQ(normalize_host("DB.Internal."), "db.internal");
  EXPECT_EQ(normalize_host("a"), "a");
  EXPECT_TRUE(host_equals("Example.COM.", "example.com"));
  EXPECT_FALSE(host_equals("example.com", "example.co"));
  EXPECT_TRUE(host_is_subdomain_of("a.b.example.com", "example.com"));
  EXPECT_FALSE(host_is_subdomain_of("example.com", "example.com"));
  EXPECT_FALSE(host_is_subdomain_of("badexample.com", "example.com"));
  EXPECT_TRUE(is_valid_host_name("db-1.internal."));
  EXPECT_FALSE(is_valid_host_name("a..b"));
  EXPECT_FALSE(is_valid_host_name(std::string(64, 'a') + ".com"));
}

TEST(AddressTarget, ParsesEveryForm) {
  auto p = parse_target_pattern("backend:SQL");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, target_kind::backend);
  EXPECT_EQ(p->name, "sql");
  p = parse_target_pattern("10.2.0.0/24:5000-5010");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, target_kind::network);
  EXPECT_EQ(to_string(p->network), "10.2.0.0/24");
  EXPECT_EQ(p->ports, (port_range{5000, 5010}));
  p = parse_target_pattern("[2001:db8::/32]:443");
  ASSERT_TRUE(p);
  EXPECT_EQ(to_string(p->network), "2001:db8::/32");
  EXPECT_EQ(p->ports, (port_range{443, 443}));
  p = parse_target_pattern("2001:db8::/32");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->ports.is_any());
  p = parse_target_pattern("[ff01::1]");
  ASSERT_TRUE(p);
  EXPECT_EQ(to_string(p->network), "ff01::1/128");
  p = parse_target_pattern("*.Corp.Example:443");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, target_kind::subdomains);
  EXPECT_EQ(p->name, "corp.example");
  p = parse_target_pattern("db.internal");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, target_kind::host);
  EXPECT_EQ(parse_target_pattern("*")->kind, target_kind::any);
  EXPECT_EQ(parse_target_pattern("*:25")->ports, (port_range{25, 25}));
}

TEST(AddressTarget, RejectsBadEntries) {
  std::string why;
  EXPECT_FALSE(parse_target_pattern("", &why));
  EXPECT_FALSE(parse_target_pattern("backend:", &why));
  EXPECT_FALSE(parse_target_pattern("10.0.0.0/33", &why));
  EXPECT_EQ(why, "bad address or network: prefix length must be 0-32 for IPv4");
  EXPECT_FALSE(parse_target_pattern("db.internal:http", &why));
  EXPECT_EQ(why, "port 'http' must be a number 0-65535 or a range like 5000-5010");
  EXPECT_FALSE(parse_target_pattern("10.2.0:80", &why));
  EXPECT_EQ(why, "'10.2.0' is not a host name, address or network");
  EXPECT_FALSE(parse_target_pattern("[::1", &why));
  EXPECT_FALSE(parse_target_pattern("*.", &why));
  EXPECT_FALSE(parse_target_pattern("a*b.example", &why));
}

TEST(AddressTarget, Covers) {
  auto t = [](const char* s) { return *parse_target_pattern(s); };
  EXPECT_TRUE(covers(t("*"), t("db.internal:80")));
  EXPECT_TRUE(covers(t("*.example.com"), t("a.example.com:443")));
  EXPECT_TRUE(covers(t("*.example.com"), t("*.a.example.com")));
  EXPECT_FALSE(covers(t("*.example.com"), t("example.com")));
  EXPECT_TRUE(covers(t("10.0.0.0/8"), t("10.2.0.0/24:5000-5010")));
  EXPECT_FALSE(covers(t("10.0.0.0/8:5000"), t("10.2.0.0/24:5000-5010")));
  EXPECT_TRUE(covers(t("backend:sql"), t("SQL")));
  EXPECT_FALSE(covers(t("0.0.0.0/0"), t("db.internal")));
}

}  // namespace
}  // namespace edgerelay::config
