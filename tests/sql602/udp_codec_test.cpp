// Unit tests of the 602SQL UDP datagram codecs (docs/602sql.md), exact bytes.
#include "sql602/udp_codec.hpp"

#include <gtest/gtest.h>

#include "tests/unit/tunnel/tunnel_split.hpp"

namespace edgerelay::tunnel::sql602 {
namespace {

using tunnel_test::b;
using tunnel_test::bytes;
using tunnel_test::hex;

bytes z(std::string_view s) {  // s plus its NUL
  bytes out = b(s);
  out.push_back(0);
  return out;
}

TEST(Sql602Str2int, ServerRules) {
  EXPECT_EQ(parse_str2int(b("5002")), 5002);
  EXPECT_EQ(parse_str2int(b("  \t-25536 \r\n")), -25536);
  EXPECT_EQ(parse_str2int(b("+7")), 7);
  EXPECT_EQ(parse_str2int(b("2147483647")), 2147483647);
  EXPECT_EQ(parse_str2int(z("12")), 12);
  EXPECT_EQ(parse_str2int(bytes{'1', '2', 0, 'x'}), 12);  // stops at the NUL
  EXPECT_FALSE(parse_str2int(b("2147483648")));
  EXPECT_FALSE(parse_str2int(b("3355443210")));
  EXPECT_FALSE(parse_str2int(b("")));
  EXPECT_FALSE(parse_str2int(b("-")));
  EXPECT_FALSE(parse_str2int(b("12a")));
  EXPECT_FALSE(parse_str2int(b("QueryForServer")));
  EXPECT_FALSE(parse_str2int(b("99999999999999999999")));
}

TEST(Sql602Discovery, QueryForms) {
  const auto named = parse_discovery_query(z("\x01QueryForServer"));
  ASSERT_TRUE(named);
  EXPECT_EQ(named->reply_port, 5002);
  EXPECT_FALSE(named->named_port);

  const auto port =
      parse_discovery_query(z("\x01"
                              "40123"));
  ASSERT_TRUE(port);
  EXPECT_EQ(port->reply_port, 40123);
  EXPECT_TRUE(port->named_port);

  // The signed-short quirk: 40000 is written -25536; the low 16 bits give 40000 back.
  const auto negative = parse_discovery_query(z("\x01-25536"));
  ASSERT_TRUE(negative);
  EXPECT_EQ(negative->reply_port, 40000);

  EXPECT_FALSE(
      parse_discovery_query(z("\x02"
                              "16777343")));
  EXPECT_FALSE(parse_discovery_query(bytes{}));
  EXPECT_EQ(parse_discovery_query(bytes{0x01})->reply_port, 5002);
}

TEST(Sql602Discovery, EncodeQueryWritesASignedShort) {
  EXPECT_EQ(hex(encode_discovery_query(5002)), hex(z("\x01"
                                                     "5002")));
  EXPECT_EQ(hex(encode_discovery_query(40000)), hex(z("\x01-25536")));
  EXPECT_EQ(hex(encode_discovery_query(32767)), hex(z("\x01"
                                                      "32767")));
  EXPECT_EQ(hex(encode_discovery_query(65535)), hex(z("\x01-1")));
  for (const std::uint32_t p : {1U, 5002U, 32767U, 32768U, 40000U, 65535U}) {
    const auto q = parse_discovery_query(encode_discovery_query(static_cast<std::uint16_t>(p)));
    ASSERT_TRUE(q);
    EXPECT_EQ(q->reply_port, p);
  }
}

TEST(Sql602Discovery, ReplyExamplesFromTheSpec) {
  const auto plain = parse_discovery_reply(bytes{0x12, 0x4D, 0x59, 0x44, 0x42, 0x00});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->name, "MYDB");
  EXPECT_EQ(plain->portbase, 5001);
  const auto with_port =
      parse_discovery_reply(z("\x12MYDB\x01"
                              "6000"));
  ASSERT_TRUE(with_port);
  EXPECT_EQ(with_port->name, "MYDB");
  EXPECT_EQ(with_port->portbase, 6000);
  EXPECT_EQ(hex(encode_discovery_reply({"MYDB", 5001})), "12 4d 59 44 42 00");
  EXPECT_EQ(hex(encode_discovery_reply({"MYDB", 6000})), hex(z("\x12MYDB\x01"
                                                               "6000")));
  EXPECT_FALSE(parse_discovery_reply(z("\x11MYDB")));
  EXPECT_FALSE(parse_discovery_reply(z("\x12MYDB\x01x")));
  EXPECT_FALSE(
      parse_discovery_reply(z("\x12MYDB\x01"
                              "70000")));
}

TEST(Sql602Discovery, RewriteReplyPort) {
  // Server on PORTBASE 6000, gateway door 5002: the client must see 5001, so the part goes.
  EXPECT_EQ(hex(*rewrite_discovery_reply(z("\x12MYDB\x01"
                                           "6000"),
                                         5001)),
            "12 4d 59 44 42 00");
  // Server on 5001, gateway door 7002: the client must see 7001.
  EXPECT_EQ(hex(*rewrite_discovery_reply(bytes{0x12, 'M', 'Y', 'D', 'B', 0x00}, 7001)), hex(z("\x12MYDB\x01"
                                                                                              "7001")));
  EXPECT_FALSE(rewrite_discovery_reply(z("\x02"
                                         "1"),
                                       7001));
  // Names are capped at 31 bytes.
  const auto long_name = encode_discovery_reply({std::string(40, 'n'), 5001});
  EXPECT_EQ(long_name.size(), 1U + 31U + 1U);
}

TEST(Sql602Break, SpecExamples) {
  EXPECT_EQ(hex(*encode_break({127, 0, 0, 1})), hex(z("\x02"
                                                      "16777343")));
  EXPECT_EQ(hex(*encode_break({192, 168, 1, 10})), hex(z("\x02"
                                                         "167880896")));
  EXPECT_EQ(hex(*encode_break({10, 9, 0, 7})), hex(z("\x02"
                                                     "117442826")));
  EXPECT_EQ(parse_break(z("\x02"
                          "167880896")),
            (ipv4_bytes{192, 168, 1, 10}));
  EXPECT_EQ(parse_break(z("\x02"
                          "16777343")),
            (ipv4_bytes{127, 0, 0, 1}));
}

TEST(Sql602Break, LastOctetAtLeast128CannotBeBroken) {
  EXPECT_FALSE(breakable({10, 0, 0, 200}));
  EXPECT_TRUE(breakable({10, 0, 0, 127}));
  EXPECT_FALSE(encode_break({10, 0, 0, 200}));
  EXPECT_FALSE(encode_break({10, 0, 0, 128}));
  EXPECT_FALSE(
      parse_break(z("\x02"
                    "3355443210")));  // 10.0.0.200: the server ignores it too
  EXPECT_FALSE(
      parse_break(z("\x02"
                    "-5")));
  EXPECT_FALSE(parse_break(z("\x02")));
  EXPECT_FALSE(
      parse_break(z("\x01"
                    "5")));
  EXPECT_EQ(parse_break(z("\x02"
                          "2147483647")),
            (ipv4_bytes{255, 255, 255, 127}));
}

TEST(Sql602Break, RoundTrip) {
  for (std::uint8_t last = 0; last < 128; last += 7) {
    const ipv4_bytes a{10, 9, 0, last};
    EXPECT_EQ(parse_break(*encode_break(a)), a);
  }
}

}  // namespace
}  // namespace edgerelay::tunnel::sql602
