// The UDP ASSOCIATE datagram header codec (RFC 1928 section 7).
#include "udp_header.hpp"

#include "socks5_codec.hpp"

namespace edgerelay::socks {

udp_parse_result parse_udp_header(std::span<const std::uint8_t> datagram) {
  constexpr std::size_t fixed = 3;  // RSV(2) FRAG
  if (datagram.size() < fixed + 1) {
    return protocol_error{reply_code::general_failure, "socks5 udp: datagram shorter than its header"};
  }
  auto addr = parse_socks5_address(datagram.subspan(fixed));
  if (auto* error = std::get_if<protocol_error>(&addr)) {
    return *error;
  }
  if (std::holds_alternative<need_more>(addr)) {
    return protocol_error{reply_code::general_failure, "socks5 udp: datagram shorter than its header"};
  }
  auto& done = std::get<parsed<target_address>>(addr);
  return udp_header{datagram[2], std::move(done.value), fixed + done.consumed};
}

std::vector<std::uint8_t> encode_udp_header(const target_address& target, std::uint8_t frag) {
  std::vector<std::uint8_t> out{0x00, 0x00, frag};
  if (!append_socks5_address(out, target)) {
    return {};
  }
  return out;
}

}  // namespace edgerelay::socks
