// A SOCKS destination: IPv4, IPv6 or a domain name, plus a port.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace edgerelay::socks {

using ipv4_bytes = std::array<std::uint8_t, 4>;
using ipv6_bytes = std::array<std::uint8_t, 16>;

using target_host = std::variant<ipv4_bytes, ipv6_bytes, std::string>;

struct target_address {
  /// string: a valid host name (names::classify_host) when it came from a parser, 1-255 bytes
  target_host host;
  std::uint16_t port = 0;
  friend bool operator==(const target_address&, const target_address&) = default;
};

/// The host a client sent in a domain field (SOCKS5 ATYP 3, SOCKS4a, the UDP header), as the codecs
/// hand it on: a valid name stays a string; a numeric IPv4 form that inet_aton accepts ("0",
/// "2130706433", "127.1", ...) and IPv6 text become the address they denote, so policy decides them
/// as that address and never as a name; anything else (NUL, '%', a 64-byte label, "256.1.1.1")
/// is nullopt, and the codec refuses the message.
std::optional<target_host> host_from_domain(std::string_view domain);

/// "192.0.2.1:80", "[2001:db8::1]:443", "example.com:8080". IPv6 is compressed exactly as glibc's
/// inet_ntop does. Domain bytes outside printable ASCII, and '"' and '\\', are escaped as \xNN
/// (upper-case hex): the result holds no quote or control byte, and every backslash starts an
/// escape. A JSON writer must still escape that backslash.
std::string to_string(const target_address&);

/// The host part alone, formatted as in to_string() but without the brackets around IPv6:
/// "192.0.2.1", "2001:db8::1", "example.com".
std::string host_string(const target_address&);

}  // namespace edgerelay::socks
