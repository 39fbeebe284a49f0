// A SOCKS destination: IPv4, IPv6 or a domain name, plus a port.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>

namespace edgerelay::socks {

using ipv4_bytes = std::array<std::uint8_t, 4>;
using ipv6_bytes = std::array<std::uint8_t, 16>;

struct target_address {
  std::variant<ipv4_bytes, ipv6_bytes, std::string> host;  ///< string: domain, 1-255 bytes
  std::uint16_t port = 0;
  friend bool operator==(const target_address&, const target_address&) = default;
};

/// "192.0.2.1:80", "[2001:db8::1]:443", "example.com:8080". IPv6 is compressed exactly as glibc's
/// inet_ntop does. Domain bytes outside printable ASCII, and '"' and '\\', are escaped as \xNN
/// (upper-case hex): the result holds no quote or control byte, and every backslash starts an
/// escape. A JSON writer must still escape that backslash.
std::string to_string(const target_address&);

/// The host part alone, formatted as in to_string() but without the brackets around IPv6:
/// "192.0.2.1", "2001:db8::1", "example.com".
std::string host_string(const target_address&);

}  // namespace edgerelay::socks
