// SOCKS constants: RFC 1928 (SOCKS5), RFC 1929 (username/password), SOCKS4 and the SOCKS4a extension.
#pragma once

#include <cstdint>

namespace edgerelay::socks {

inline constexpr std::uint8_t socks4_version = 0x04;
inline constexpr std::uint8_t socks5_version = 0x05;
inline constexpr std::uint8_t userpass_version = 0x01;  // RFC 1929 sub-negotiation version

/// RFC 1928 section 6 REP values.
/// A domain that is not a valid host name (socks::host_from_domain) is answered host_unreachable,
/// never address_type_not_supported: the ATYP is fine, the name just cannot denote a host, which is
/// what 0x04 says (DESIGN.md section 5: "host unreachable, name not found"). SOCKS4a maps it to 0x5B.
enum class reply_code : std::uint8_t {
  succeeded = 0x00,
  general_failure = 0x01,
  not_allowed = 0x02,
  network_unreachable = 0x03,
  host_unreachable = 0x04,
  connection_refused = 0x05,
  ttl_expired = 0x06,  // also "connect timeout", as Dante does
  command_not_supported = 0x07,
  address_type_not_supported = 0x08,
};

/// SOCKS4 CD values in the reply.
enum class socks4_reply : std::uint8_t {
  granted = 0x5A,
  rejected = 0x5B,
  no_identd = 0x5C,
  bad_user = 0x5D,
};

enum class command : std::uint8_t { connect = 0x01, bind = 0x02, udp_associate = 0x03 };

enum class method : std::uint8_t {
  no_auth = 0x00,
  gssapi = 0x01,
  username_password = 0x02,
  no_acceptable = 0xFF,
};

enum class address_type : std::uint8_t { ipv4 = 0x01, domain = 0x03, ipv6 = 0x04 };

/*
  SOCKS5 greeting            SOCKS5 request / reply                       SOCKS4(a) request
  +----+----------+------+   +----+-----+-------+------+---------+------+ +----+----+------+------+--------+------------+
  |VER | NMETHODS | METH |   |VER | CMD | RSV   | ATYP | ADDR    | PORT | | VN | CD | PORT | IPv4 | USERID | [DOMAIN]   |
  | 05 |    1     | 1-255|   | 05 | 1/REP | 00  |  1   | 4/16/1+n|  2   | | 04 | 01 |  2   |  4   | ... 00 | (4a) ... 00|
  +----+----------+------+   +----+-----+-------+------+---------+------+ +----+----+------+------+--------+------------+
  SOCKS4 reply: 00 CD PORT(2) IPv4(4), always 8 bytes. SOCKS4a: IPv4 is 0.0.0.x with x != 0.
*/

}  // namespace edgerelay::socks
