// Unit tests of host classification: name rules, every inet_aton form, IPv6 text, cross-checked against the C library.
#include "names/host_name.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace edgerelay::names {
namespace {

using namespace std::string_literals;

const char* kind_name(host_kind k) {
  switch (k) {
    case host_kind::dns_name: return "dns_name";
    case host_kind::ipv4: return "ipv4";
    case host_kind::ipv6: return "ipv6";
    case host_kind::invalid: return "invalid";
  }
  return "?";
}

// The C library's reading, for comparison; the strings are copied so each is NUL-terminated.
std::optional<ipv4_bytes> libc_inet_aton(const std::string& s) {
  in_addr a{};
  if (::inet_aton(s.c_str(), &a) == 0) {
    return std::nullopt;
  }
  ipv4_bytes out{};
  std::memcpy(out.data(), &a.s_addr, 4);
  return out;
}

std::optional<ipv6_bytes> libc_inet_pton6(const std::string& s) {
  ipv6_bytes out{};
  if (::inet_pton(AF_INET6, s.c_str(), out.data()) != 1) {
    return std::nullopt;
  }
  return out;
}

// Every string of length 0..max_len over `alphabet`, in turn.
template <class Fn>
void for_every_string(std::string_view alphabet, std::size_t max_len, Fn fn) {
  std::string s;
  for (std::size_t len = 0; len <= max_len; ++len) {
    std::vector<std::size_t> idx(len, 0);
    for (;;) {
      s.resize(len);
      for (std::size_t i = 0; i < len; ++i) {
        s[i] = alphabet[idx[i]];
      }
      fn(s);
      std::size_t pos = 0;
      while (pos < len && ++idx[pos] == alphabet.size()) {
        idx[pos++] = 0;
      }
      if (pos == len) {
        break;
      }
    }
  }
}

TEST(ClassifyHost, AcceptsNames) {
  for (const char* name : {"example.com", "a", "A.Example.COM", "a_b.example", "xn--bcher-kva.example", "example.com.",
                           "0x1g", "1e100", "0xdeadbeef.com", "1.2.3.com", "localhost", "a-.-b", "0a.1b"}) {
    const auto c = classify_host(name);
    EXPECT_EQ(c.kind, host_kind::dns_name) << name << ": " << kind_name(c.kind) << " " << c.why;
  }
}

TEST(ClassifyHost, RejectsNulByte) {
  const auto c = classify_host("localhost\0.corp.example"s);
  EXPECT_EQ(c.kind, host_kind::invalid);
  EXPECT_EQ(c.why, "NUL byte");
  EXPECT_EQ(classify_host("\0"s).kind, host_kind::invalid);
  EXPECT_EQ(classify_host("a.example\0"s).kind, host_kind::invalid);
}

TEST(ClassifyHost, RejectsEveryByteOutsideTheAlphabet) {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    const std::string host = "a"s + c + "b.example";
    const auto r = classify_host(host);
    if (allowed) {
      EXPECT_EQ(r.kind, host_kind::dns_name) << "byte " << b;
    } else {
      EXPECT_EQ(r.kind, host_kind::invalid) << "byte " << b;
      EXPECT_FALSE(r.why.empty()) << "byte " << b;
    }
  }
}

TEST(ClassifyHost, SaysWhyABytesIsRefused) {
  EXPECT_EQ(classify_host("a\x01z").why, "control byte");
  EXPECT_EQ(classify_host("a\x7fz").why, "control byte");
  EXPECT_EQ(classify_host("b\xc3\xbc"
                          "cher.example")
                .why,
            "non-ASCII byte");
  EXPECT_EQ(classify_host("a b").why, "space");
  for (const char* bad : {"bad%name", "a/b", "user@host", "a~b", "a+b", "a*b"}) {
    EXPECT_EQ(classify_host(bad).why, "character not allowed in a host name") << bad;
  }
}

TEST(ClassifyHost, LabelLimits) {
  const std::string l63(63, 'a');
  const std::string l64(64, 'a');
  EXPECT_EQ(classify_host(l63 + ".example").kind, host_kind::dns_name);
  EXPECT_EQ(classify_host(l64 + ".example").why, "label longer than 63");
  EXPECT_EQ(classify_host("example." + l64).why, "label longer than 63");
  EXPECT_EQ(classify_host(".example").why, "empty label");
  EXPECT_EQ(classify_host("a..example").why, "empty label");
  EXPECT_EQ(classify_host("example..").why, "empty label");
  EXPECT_EQ(classify_host(".").why, "empty name");
  EXPECT_EQ(classify_host("").why, "empty host");
}

TEST(ClassifyHost, NameLengthLimit) {
  // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253.
  const std::string n253 =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(n253.size(), 253U);
  EXPECT_EQ(classify_host(n253).kind, host_kind::dns_name);
  EXPECT_EQ(classify_host(n253 + ".").kind, host_kind::dns_name);  // the root dot is not counted
  EXPECT_EQ(classify_host(n253 + "d").why, "name longer than 253");
  EXPECT_EQ(classify_host(n253 + "d.").why, "name longer than 253");
}

TEST(ClassifyHost, NumericFormsAreIpv4) {
  struct row {
    const char* text;
    ipv4_bytes v4;
  };
  const row rows[] = {
      {"0", {0, 0, 0, 0}},
      {"0x0", {0, 0, 0, 0}},
      {"0.0.0.0", {0, 0, 0, 0}},
      {"00", {0, 0, 0, 0}},
      {"2130706433", {127, 0, 0, 1}},
      {"0x7f.1", {127, 0, 0, 1}},
      {"127.1", {127, 0, 0, 1}},
      {"0177.0.0.1", {127, 0, 0, 1}},
      {"0x7F000001", {127, 0, 0, 1}},
      {"017700000001", {127, 0, 0, 1}},
      {"127.0.1", {127, 0, 0, 1}},
      {"127.0.0.1", {127, 0, 0, 1}},
      {"10.0x10203", {10, 1, 2, 3}},
      {"1.2.0xffff", {1, 2, 255, 255}},
      {"4294967295", {255, 255, 255, 255}},
      {"0xFFFFFFFF", {255, 255, 255, 255}},
      {"255.255.255.255", {255, 255, 255, 255}},
      {"0000000000000000000000000001", {0, 0, 0, 1}},
      {"0x0000000000000000000000000001", {0, 0, 0, 1}},
  };
  for (const auto& r : rows) {
    const auto c = classify_host(r.text);
    EXPECT_EQ(c.kind, host_kind::ipv4) << r.text << ": " << kind_name(c.kind) << " " << c.why;
    EXPECT_EQ(c.v4, r.v4) << r.text;
    EXPECT_EQ(libc_inet_aton(r.text), std::optional<ipv4_bytes>(r.v4)) << r.text << " (the table itself)";
  }
}

TEST(ClassifyHost, NumericLookingButNotAnAddressIsInvalid) {
  for (const char* bad : {"256.1.1.1",  "0x",           "0X",         "1.2.3.4.5", "08",   "09.1",
                          "a.1",        "example.123",  "127.0.0.1.", "1..2",      ".1",   "0x100000000",
                          "4294967296", "1.16777216",   "1.2.65536",  "1.2.3.256", "0x.1", "99999999999999999999999",
                          "1.0x",       "example.0x1f", "0xg.1"}) {
    const auto c = classify_host(bad);
    EXPECT_EQ(c.kind, host_kind::invalid) << bad << ": " << kind_name(c.kind);
    EXPECT_EQ(c.why, "numeric host is not an IPv4 address") << bad;
  }
}

TEST(ClassifyHost, Ipv6Literals) {
  struct row {
    const char* text;
    host_kind kind;
  };
  const row rows[] = {
      {"::1", host_kind::ipv6},
      {"[::1]", host_kind::ipv6},
      {"::", host_kind::ipv6},
      {"[::]", host_kind::ipv6},
      {"::ffff:0.0.0.0", host_kind::ipv6},
      {"2001:DB8::1", host_kind::ipv6},
      {"[fe80::1%25eth0]", host_kind::invalid},
      {"fe80::1%eth0", host_kind::invalid},
      {"[1.2.3.4]", host_kind::invalid},
      {"[::1", host_kind::invalid},
      {"[", host_kind::invalid},
      {"[]", host_kind::invalid},
      {"a:b", host_kind::invalid},
      {"example.com:80", host_kind::invalid},
      {"::1]", host_kind::invalid},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(classify_host(r.text).kind, r.kind) << r.text;
  }
  ipv6_bytes loopback{};
  loopback[15] = 1;
  EXPECT_EQ(classify_host("[::1]").v6, loopback);
  ipv6_bytes mapped_zero{};
  mapped_zero[10] = 0xFF;
  mapped_zero[11] = 0xFF;
  EXPECT_EQ(classify_host("::ffff:0.0.0.0").v6, mapped_zero);
}

TEST(ParseIpv4Numeric, AgreesWithInetAtonOnTable) {
  for (const char* s : {"0",
                        "1",
                        "255",
                        "256",
                        "0xff",
                        "0xFF",
                        "0Xff",
                        "0x",
                        "0x1g",
                        "0377",
                        "0400",
                        "08",
                        "0.0",
                        "1.2",
                        "1.2.3",
                        "1.2.3.4",
                        "1.2.3.4.5",
                        "1.256",
                        "1.16777215",
                        "1.16777216",
                        "1.2.65535",
                        "1.2.65536",
                        "1.2.3.255",
                        "1.2.3.256",
                        "4294967295",
                        "4294967296",
                        "0xffffffff",
                        "0x100000000",
                        "037777777777",
                        "040000000000",
                        "18446744073709551615",
                        "18446744073709551616",
                        "99999999999999999999",
                        "0x0000000000000000000000000000000000ff",
                        ".",
                        "1.",
                        ".1",
                        "1..1",
                        "+1",
                        "-1",
                        "1e1",
                        "0x.1",
                        "1.0x1.2",
                        "0x1.0x2.0x3.0x4",
                        "01.02.03.04",
                        "00000000000000001.1"}) {
    EXPECT_EQ(parse_ipv4_numeric(s), libc_inet_aton(s)) << s;
  }
}

TEST(ParseIpv4Numeric, AgreesWithInetAtonOnEveryShortString) {
  // Digits of every base and the letters that change a base, up to five characters: 111,111 strings.
  std::size_t accepted = 0;
  for_every_string("0178xXafg.", 5, [&](const std::string& s) {
    const auto mine = parse_ipv4_numeric(s);
    ASSERT_EQ(mine, libc_inet_aton(s)) << "'" << s << "'";
    accepted += mine.has_value() ? 1 : 0;
  });
  EXPECT_GT(accepted, 1000U);  // the alphabet really reaches the accepting paths
}

TEST(ParseIpv4Numeric, RefusesTheTrailingWhitespaceInetAtonIgnores) {
  // glibc's inet_aton stops at whitespace and accepts; getaddrinfo does not, so neither do we.
  ASSERT_TRUE(libc_inet_aton("127.0.0.1 junk").has_value());
  EXPECT_FALSE(parse_ipv4_numeric("127.0.0.1 junk").has_value());
  EXPECT_FALSE(parse_ipv4_numeric("127.0.0.1\t").has_value());
  EXPECT_EQ(classify_host("127.0.0.1 ").kind, host_kind::invalid);
}

TEST(ParseIpv6Literal, AgreesWithInetPtonOnTable) {
  for (const char* s : {"::",
                        "::1",
                        "1::",
                        "1::2",
                        ":1",
                        "1:",
                        ":::",
                        "1:::2",
                        "1:2:3:4:5:6:7:8",
                        "1:2:3:4:5:6:7:8:9",
                        "1:2:3:4:5:6:7::",
                        "::2:3:4:5:6:7:8",
                        "1:2:3:4:5:6:7:8::",
                        "::1:2:3:4:5:6:7:8",
                        "12345::",
                        "ffff::",
                        "FFFF::",
                        "g::",
                        "::ffff:1.2.3.4",
                        "::1.2.3.4",
                        "::1.2.3",
                        "::1.2.3.4.5",
                        "::01.2.3.4",
                        "::256.1.1.1",
                        "1.2.3.4",
                        "1:2:3:4:5:6:1.2.3.4",
                        "1:2:3:4:5:6:7:1.2.3.4",
                        "::1.2.3.4:1",
                        "::0.0.0.0",
                        "::ffff:0.0.0.0",
                        "fe80::1%eth0",
                        "",
                        "1:2:3:4:5:6:7:8:",
                        "0:0:0:0:0:0:0:0"}) {
    EXPECT_EQ(parse_ipv6_literal(s), libc_inet_pton6(s)) << s;
  }
}

TEST(ParseIpv6Literal, AgreesWithInetPtonOnEveryShortString) {
  // Groups, separators and the dotted tail, up to eight characters: 488,281 strings.
  std::size_t accepted = 0;
  for_every_string("01f:.", 8, [&](const std::string& s) {
    const auto mine = parse_ipv6_literal(s);
    ASSERT_EQ(mine, libc_inet_pton6(s)) << "'" << s << "'";
    accepted += mine.has_value() ? 1 : 0;
  });
  EXPECT_GT(accepted, 1000U);
}

TEST(ClassifyHost, NothingTheLibraryReadsAsAnAddressIsAName) {
  // The property the codecs rely on: a host is a dns_name only when neither inet_aton nor
  // inet_pton would turn it into an address, and an address comes back as that address.
  for_every_string("08xa-.:_", 5, [&](const std::string& s) {
    const auto c = classify_host(s);
    const auto v4 = libc_inet_aton(s);
    const auto v6 = libc_inet_pton6(s);
    if (v4) {
      ASSERT_EQ(c.kind, host_kind::ipv4) << "'" << s << "'";
      ASSERT_EQ(c.v4, *v4) << "'" << s << "'";
    } else if (v6) {
      ASSERT_EQ(c.kind, host_kind::ipv6) << "'" << s << "'";
      ASSERT_EQ(c.v6, *v6) << "'" << s << "'";
    } else {
      ASSERT_TRUE(c.kind == host_kind::dns_name || c.kind == host_kind::invalid) << "'" << s << "'";
    }
  });
}

TEST(ToDottedQuad, FormatsEveryByte) {
  EXPECT_EQ(to_dotted_quad({127, 0, 0, 1}), "127.0.0.1");
  EXPECT_EQ(to_dotted_quad({0, 0, 0, 0}), "0.0.0.0");
  EXPECT_EQ(to_dotted_quad({255, 255, 255, 255}), "255.255.255.255");
  EXPECT_EQ(to_dotted_quad({10, 200, 3, 45}), "10.200.3.45");
}

}  // namespace
}  // namespace edgerelay::names
