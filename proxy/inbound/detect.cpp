// Protocol detection from the first byte of a connection.
#include "proxy/inbound/detect.hpp"

namespace edgerelay::proxy {

detected detect_protocol(std::span<const std::uint8_t> first_bytes) noexcept {
  if (first_bytes.empty()) {
    return detected::need_more;
  }
  const std::uint8_t b = first_bytes.front();
  if (b == 0x05) {
    return detected::socks5;
  }
  if (b == 0x04) {
    return detected::socks4;
  }
  if (b == 0x16) {
    return detected::tls;
  }
  if (b >= 'A' && b <= 'Z') {
    return detected::http;
  }
  return detected::unknown;
}

}  // namespace edgerelay::proxy
