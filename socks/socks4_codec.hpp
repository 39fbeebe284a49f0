// SOCKS4 and SOCKS4a wire codec, pure: the request and the 8-byte reply.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "parse_result.hpp"
#include "target.hpp"
#include "wire.hpp"

namespace edgerelay::socks {

/// Longest USERID and SOCKS4a domain accepted, without the NUL. Bounds what a client can make us
/// buffer before the request is complete.
inline constexpr std::size_t socks4_max_field = 255;

/// VN CD DSTPORT DSTIP USERID 00 [DOMAIN 00].
struct socks4_request {
  command cmd = command::connect;  ///< connect or bind
  target_address target;           ///< IPv4, or for SOCKS4a the domain (or the address it spells)
  std::string user_id;             ///< raw bytes, may be empty
  bool socks4a = false;            ///< DSTIP was 0.0.0.x, x != 0, and a domain followed
  friend bool operator==(const socks4_request&, const socks4_request&) = default;
};

/// Errors, decided as soon as the deciding byte is present: VN != 4 (general_failure), CD not 1/2
/// (command_not_supported), USERID or domain longer than socks4_max_field, empty SOCKS4a domain
/// (general_failure), a SOCKS4a domain that is not a valid host name (host_unreachable: the server
/// answers 0x5B, see wire.hpp). A numeric SOCKS4a domain ("0", "127.1", "2130706433", "::1")
/// becomes the address it denotes (host_from_domain), so the target is never that text.
parse_result<socks4_request> parse_socks4_request(std::span<const std::uint8_t> in);

/// 00 CD DSTPORT DSTIP, always 8 bytes: the 602SQL Windows client reads it with one recv.
std::array<std::uint8_t, 8> encode_socks4_reply(socks4_reply cd, std::uint16_t port = 0, const ipv4_bytes& addr = {});

/// Client side, for upstream chaining and tests: SOCKS4 for an IPv4 target, SOCKS4a for a domain.
/// Empty result for IPv6, a domain of 0 or > 255 bytes, a user id > 255 bytes, a NUL inside the
/// domain or the user id, an IPv4 0.0.0.x (x != 0, the SOCKS4a marker) or a command other than
/// connect/bind.
std::vector<std::uint8_t> encode_socks4_request(command cmd, const target_address& target, std::string_view user_id);

}  // namespace edgerelay::socks
