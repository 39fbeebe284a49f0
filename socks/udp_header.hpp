// The UDP ASSOCIATE datagram header (RFC 1928 section 7), pure: parse and encode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "parse_result.hpp"
#include "target.hpp"

namespace edgerelay::socks {

/*
  +-----+------+------+----------+----------+----------+
  | RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
  |  2  |  1   |  1   | 4/16/1+n |    2     | variable |
  +-----+------+------+----------+----------+----------+
*/
struct udp_header {
  std::uint8_t frag = 0;  ///< 0 = standalone datagram; the relay decides what to do with others
  target_address target;
  std::size_t payload_offset = 0;  ///< DATA starts here; may equal the datagram size (empty DATA)
  friend bool operator==(const udp_header&, const udp_header&) = default;
};

/// A datagram is complete or nothing, so a short one is an error, never "need more".
using udp_parse_result = std::variant<protocol_error, udp_header>;

/// Errors: shorter than its header, ATYP not 1/3/4 (address_type_not_supported), domain length 0,
/// a domain that is not a valid host name (host_unreachable; the relay drops such a datagram as
/// malformed). A numeric domain ("0", "127.1") becomes the address it denotes, as in the TCP
/// request. RSV is ignored, as in the TCP request.
udp_parse_result parse_udp_header(std::span<const std::uint8_t> datagram);

/// 00 00 FRAG ATYP ADDR PORT. Empty result for a domain of 0 or > 255 bytes.
std::vector<std::uint8_t> encode_udp_header(const target_address& target, std::uint8_t frag = 0);

}  // namespace edgerelay::socks
