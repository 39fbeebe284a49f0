// detect_protocol(): the first byte decides.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "proxy/inbound/detect.hpp"

namespace edgerelay::proxy {
namespace {

detected first(std::uint8_t b) {
  const std::array<std::uint8_t, 1> in{b};
  return detect_protocol(in);
}

TEST(DetectProtocol, EmptyInputNeedsMore) {
  EXPECT_EQ(detect_protocol({}), detected::need_more);
}

TEST(DetectProtocol, SocksVersionsTlsAndHttpMethods) {
  EXPECT_EQ(first(0x05), detected::socks5);
  EXPECT_EQ(first(0x04), detected::socks4);
  EXPECT_EQ(first(0x16), detected::tls);
  for (char c : std::string_view("CGPHODTA")) {  // CONNECT GET POST HEAD OPTIONS DELETE TRACE A..
    EXPECT_EQ(first(static_cast<std::uint8_t>(c)), detected::http) << c;
  }
}

TEST(DetectProtocol, EverythingElseIsUnknown) {
  for (int b = 0; b < 256; ++b) {
    const bool known = b == 0x04 || b == 0x05 || b == 0x16 || (b >= 'A' && b <= 'Z');
    if (!known) {
      EXPECT_EQ(first(static_cast<std::uint8_t>(b)), detected::unknown) << b;
    }
  }
}

TEST(DetectProtocol, OnlyTheFirstByteCounts) {
  const std::array<std::uint8_t, 3> in{0x05, 0x16, 'G'};
  EXPECT_EQ(detect_protocol(in), detected::socks5);
}

}  // namespace
}  // namespace edgerelay::proxy
