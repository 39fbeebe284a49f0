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

/// "192.0.2.1:80", "[2001:db8::1]:443", "example.com:8080". Non-printable domain bytes are
/// escaped as \xNN so the result is safe for logs.
std::string to_string(const target_address&);

/// The host part alone, formatted as in to_string().
std::string host_string(const target_address&);

}  // namespace edgerelay::socks
