// PROXY v1/v2 parser: every split offset, exact consumption, each specific error, the encoder
// round trip and the CRC32C check.
#include "tunnel/proxy_protocol_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace edgerelay::tunnel {
namespace {

using bytes = std::vector<std::uint8_t>;

bytes b(std::string_view s) {
  return bytes(s.begin(), s.end());
}

bytes cat(bytes a, const bytes& tail) {
  a.insert(a.end(), tail.begin(), tail.end());
  return a;
}

/// One run over `chunks`: the end state, the error word, the header and how many bytes were taken.
struct run {
  proxy_header_parser::status state = proxy_header_parser::status::need_more;
  std::string error;
  proxy_header header;
  std::size_t consumed = 0;
  friend bool operator==(const run&, const run&) = default;
};

run drive(const std::vector<std::span<const std::uint8_t>>& chunks) {
  proxy_header_parser p;
  run r;
  for (const auto c : chunks) {
    const auto res = p.feed(c);
    r.consumed += res.consumed;
    r.state = res.state;
    if (res.state != proxy_header_parser::status::need_more) {
      // Everything a feed returned past `consumed` stays the client's own.
      EXPECT_LE(res.consumed, c.size());
      break;
    }
    EXPECT_EQ(res.consumed, c.size()) << "need_more must take every byte it was given";
  }
  r.error = std::string(to_string(p.error()));
  if (r.state == proxy_header_parser::status::done) r.header = p.header();
  return r;
}

/// The same run whole, split in two at every offset, and byte by byte; returns it.
run same_at_every_split(const bytes& input) {
  const std::span<const std::uint8_t> in(input);
  const run whole = drive({in});
  for (std::size_t cut = 0; cut <= in.size(); ++cut) {
    SCOPED_TRACE("split at " + std::to_string(cut));
    EXPECT_EQ(drive({in.first(cut), in.subspan(cut)}), whole);
  }
  std::vector<std::span<const std::uint8_t>> single;
  for (std::size_t i = 0; i < in.size(); ++i) single.push_back(in.subspan(i, 1));
  EXPECT_EQ(drive(single), whole);
  return whole;
}

run done_at_every_split(const bytes& header, const bytes& behind = b("\x05\x01\x00")) {
  const run r = same_at_every_split(cat(header, behind));
  EXPECT_EQ(r.state, proxy_header_parser::status::done) << r.error;
  EXPECT_EQ(r.consumed, header.size()) << "the bytes behind the header must stay unread";
  return r;
}

std::string failure(const bytes& input) {
  const run r = same_at_every_split(input);
  EXPECT_EQ(r.state, proxy_header_parser::status::failed);
  return r.error;
}

proxy_address v4(std::uint8_t a, std::uint8_t b2, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
  proxy_address out;
  out.bytes[0] = a;
  out.bytes[1] = b2;
  out.bytes[2] = c;
  out.bytes[3] = d;
  out.port = port;
  return out;
}

TEST(ProxyV1, Tcp4AtEverySplitLeavesTheClientBytes) {
  const run r = done_at_every_split(b("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"));
  EXPECT_EQ(r.header.version, 1);
  EXPECT_TRUE(r.header.proxied);
  EXPECT_EQ(r.header.source, v4(192, 0, 2, 7, 56324));
  EXPECT_EQ(r.header.destination, v4(198, 51, 100, 1, 443));
}

TEST(ProxyV1, Tcp6) {
  const run r = done_at_every_split(b("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n"));
  EXPECT_TRUE(r.header.source.v6);
  EXPECT_EQ(r.header.source.bytes[0], 0x20);
  EXPECT_EQ(r.header.source.bytes[15], 0x01);
  EXPECT_EQ(r.header.source.port, 65535);
  EXPECT_EQ(r.header.destination.bytes[15], 0x01);
  EXPECT_EQ(r.header.destination.port, 0);
}

TEST(ProxyV1, UnknownKeepsTheRealPeerAndIgnoresTheRest) {
  EXPECT_FALSE(done_at_every_split(b("PROXY UNKNOWN\r\n")).header.proxied);
  EXPECT_FALSE(done_at_every_split(b("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")).header.proxied);
}

TEST(ProxyV1, LongestLineIsAcceptedAndOneMoreIsNot) {
  // 107 bytes: the spec's worst case, UNKNOWN followed by full IPv6 addresses.
  const bytes longest = b(
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
  ASSERT_EQ(longest.size(), proxy_v1_max_bytes);
  done_at_every_split(longest);
  EXPECT_EQ(failure(b("PROXY UNKNOWN " + std::string(100, 'x') + "\r\n")), "v1_too_long");
}

TEST(ProxyV1, SpecificErrors) {
  EXPECT_EQ(failure(b("PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n")), "bad_signature");
  EXPECT_EQ(failure(b("GET / HTTP/1.1\r\n")), "bad_signature");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")), "v1_bad_line");
  EXPECT_EQ(failure(b("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n")), "v1_bad_line");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")), "v1_bad_line");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n")), "v1_bad_line");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 5.6.7.8 1\t2\r\n")), "v1_bad_line");
  EXPECT_EQ(failure(b("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")), "v1_bad_protocol");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 ::1 1 2\r\n")), "v1_bad_address");
  EXPECT_EQ(failure(b("PROXY TCP6 1.2.3.4 ::1 1 2\r\n")), "v1_bad_address");
  EXPECT_EQ(failure(b("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n")), "v1_bad_address");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")), "v1_bad_port");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n")), "v1_bad_port");
  EXPECT_EQ(failure(b("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n")), "v1_bad_port");
}

TEST(ProxyV1, WrongFirstByteFailsAtOnce) {
  proxy_header_parser p;
  const bytes socks{0x05, 0x01, 0x00};
  const auto r = p.feed(socks);
  EXPECT_EQ(r.state, proxy_header_parser::status::failed);
  EXPECT_EQ(r.consumed, 1U);
  EXPECT_EQ(p.error(), proxy_error::bad_signature);
}

proxy_header sample_v4() {
  proxy_header h;
  h.proxied = true;
  h.source = v4(127, 0, 0, 5, 40000);
  h.destination = v4(127, 0, 0, 1, 1080);
  return h;
}

TEST(ProxyV2, InetRoundTripAtEverySplit) {
  const proxy_header h = sample_v4();
  const bytes wire = encode_proxy_v2(h);
  EXPECT_EQ(wire.size(), 16U + 12U);
  run r = done_at_every_split(wire);
  EXPECT_EQ(r.header.version, 2);
  r.header.version = 0;
  EXPECT_EQ(r.header, h);
}

TEST(ProxyV2, Inet6WithEveryTlvAndCrc) {
  proxy_header h;
  h.proxied = true;
  h.source.v6 = h.destination.v6 = true;
  h.source.bytes[0] = 0x20;
  h.source.bytes[1] = 0x01;
  h.source.bytes[15] = 0x09;
  h.source.port = 1;
  h.destination.bytes[15] = 1;
  h.destination.port = 443;
  h.alpn = "h2";
  h.authority = "db.example.test";
  h.unique_id = std::string(128, 'u');
  h.ssl = proxy_ssl{.client = 0x07,
                    .verify = 0,
                    .version = "TLSv1.3",
                    .cn = "alice",
                    .cipher = "TLS_AES_128_GCM_SHA256",
                    .sig_alg = "RSA-SHA256",
                    .key_alg = "RSA2048"};
  const bytes wire = encode_proxy_v2(h, true);
  run r = done_at_every_split(wire);
  EXPECT_TRUE(r.header.crc_checked);
  r.header.version = 0;
  r.header.crc_checked = false;
  EXPECT_EQ(r.header, h);
}

TEST(ProxyV2, LocalUsesTheRealPeerEvenWithAnAddressBlock) {
  const proxy_header local;  // proxied = false
  const bytes wire = encode_proxy_v2(local);
  EXPECT_EQ(wire.size(), 16U);
  EXPECT_FALSE(done_at_every_split(wire).header.proxied);
  // LOCAL with an INET block (as some balancers send for health checks): block skipped.
  bytes with_block = encode_proxy_v2(sample_v4());
  with_block[12] = 0x20;
  EXPECT_FALSE(done_at_every_split(with_block).header.proxied);
}

TEST(ProxyV2, UnspecWithProxyCommandUsesTheRealPeer) {
  bytes wire = encode_proxy_v2(proxy_header{});
  wire[12] = 0x21;
  EXPECT_FALSE(done_at_every_split(wire).header.proxied);
}

TEST(ProxyV2, NoopAndUnknownTlvsAreSkipped) {
  bytes wire = encode_proxy_v2(sample_v4());
  const bytes extra{0x04, 0x00, 0x02, 0xAA, 0xBB, 0xE0, 0x00, 0x01, 0x42, 0x30, 0x00, 0x00};
  wire.insert(wire.end(), extra.begin(), extra.end());
  wire[15] = static_cast<std::uint8_t>(wire[15] + extra.size());
  EXPECT_TRUE(done_at_every_split(wire).header.proxied);
}

TEST(ProxyV2, SpecificErrors) {
  const bytes good = encode_proxy_v2(sample_v4());
  auto with = [&good](std::size_t at, std::uint8_t v) {
    bytes w = good;
    w[at] = v;
    return w;
  };
  EXPECT_EQ(failure(with(0, 0x0A)), "bad_signature");
  EXPECT_EQ(failure(with(11, 0x0B)), "bad_signature");
  EXPECT_EQ(failure(with(12, 0x11)), "v2_bad_version");
  EXPECT_EQ(failure(with(12, 0x22)), "v2_bad_command");
  EXPECT_EQ(failure(with(13, 0x12)), "v2_bad_family");  // UDP over a TCP listener
  EXPECT_EQ(failure(with(13, 0x31)), "v2_bad_family");  // AF_UNIX
  EXPECT_EQ(failure(with(13, 0x41)), "v2_bad_family");
  EXPECT_EQ(failure(with(15, 11)), "v2_short_addresses");
  bytes huge = with(14, 0x08);  // 2048 + 12: one byte over the cap
  huge[15] = 12 + 1;
  EXPECT_EQ(failure(huge), "v2_too_long");
}

/// `good` (12-byte INET block) with `tlv` appended and the length fixed.
bytes with_tlv(const bytes& tlv) {
  bytes w = encode_proxy_v2(sample_v4());
  w.insert(w.end(), tlv.begin(), tlv.end());
  w[14] = static_cast<std::uint8_t>((w.size() - 16) >> 8U);
  w[15] = static_cast<std::uint8_t>((w.size() - 16) & 0xFFU);
  return w;
}

TEST(ProxyV2, TruncatedAndMalformedTlvs) {
  EXPECT_EQ(failure(with_tlv({0x02, 0x00})), "v2_tlv_truncated");
  EXPECT_EQ(failure(with_tlv({0x02, 0x00, 0x05, 'a', 'b'})), "v2_tlv_truncated");
  EXPECT_EQ(failure(with_tlv({0x02, 0x00, 0x00})), "v2_bad_tlv");              // empty AUTHORITY
  EXPECT_EQ(failure(with_tlv({0x03, 0x00, 0x02, 0x00, 0x00})), "v2_bad_tlv");  // CRC of 2 bytes
  EXPECT_EQ(failure(with_tlv({0x20, 0x00, 0x02, 0x01, 0x00})), "v2_bad_tlv");  // SSL without verify
  // An SSL sub-TLV running past the SSL TLV's own value.
  EXPECT_EQ(failure(with_tlv({0x20, 0x00, 0x08, 0x01, 0, 0, 0, 0, 0x22, 0x00, 0x09})), "v2_tlv_truncated");
  EXPECT_EQ(failure(with_tlv({0x02, 0x00, 0x01, 'a', 0x02, 0x00, 0x01, 'b'})), "v2_bad_tlv");  // twice
  bytes long_id{0x05, 0x00, 129};
  long_id.resize(3 + 129, 'x');
  EXPECT_EQ(failure(with_tlv(long_id)), "v2_bad_tlv");
}

TEST(ProxyV2, CrcMismatchIsRefused) {
  proxy_header h = sample_v4();
  h.authority = "a.example";
  bytes wire = encode_proxy_v2(h, true);
  EXPECT_TRUE(done_at_every_split(wire).header.crc_checked);
  wire[16] ^= 0x01;  // the source address, covered by the checksum
  EXPECT_EQ(failure(wire), "v2_crc_mismatch");
}

TEST(ProxyV2, CrcIsCastagnoli) {
  // RFC 3720 B.4's check value of "123456789".
  EXPECT_EQ(crc32c(b("123456789")), 0xE3069283U);
  const bytes zeros(32, 0);
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAU);
}

TEST(ProxyV2, EncoderMapsIpv4BesideIpv6) {
  proxy_header h = sample_v4();
  h.destination.v6 = true;
  h.destination.bytes = {};
  h.destination.bytes[15] = 1;
  const run r = done_at_every_split(encode_proxy_v2(h));
  EXPECT_TRUE(r.header.source.v6);
  EXPECT_EQ(r.header.source.bytes[10], 0xFF);
  EXPECT_EQ(r.header.source.bytes[12], 127);
}

TEST(ProxySignature, DetectsBothVersionsAndTheirPrefixes) {
  EXPECT_EQ(detect_proxy_signature(b("PROXY TCP4")), proxy_signature::present);
  EXPECT_EQ(detect_proxy_signature(b("PROX")), proxy_signature::partial);
  EXPECT_EQ(detect_proxy_signature(b("POST / HTTP/1.1")), proxy_signature::absent);
  EXPECT_EQ(detect_proxy_signature(bytes{0x05, 0x01, 0x00}), proxy_signature::absent);
  const bytes v2 = encode_proxy_v2(sample_v4());
  EXPECT_EQ(detect_proxy_signature(v2), proxy_signature::present);
  EXPECT_EQ(detect_proxy_signature(std::span(v2).first(5)), proxy_signature::partial);
  EXPECT_EQ(detect_proxy_signature(bytes{0x0D, 0x0A, 0x0D, 0x0A, 0x01}), proxy_signature::absent);
}

TEST(ProxyParser, TakesNothingOnceFinished) {
  proxy_header_parser p;
  const bytes wire = encode_proxy_v2(sample_v4());
  ASSERT_EQ(p.feed(wire).state, proxy_header_parser::status::done);
  const auto again = p.feed(wire);
  EXPECT_EQ(again.state, proxy_header_parser::status::done);
  EXPECT_EQ(again.consumed, 0U);
}

}  // namespace
}  // namespace edgerelay::tunnel
