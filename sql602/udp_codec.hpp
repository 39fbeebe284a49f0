// 602SQL UDP datagrams on PORTBASE, sans-I/O (docs/602sql.md): discovery queries
// and replies, break datagrams, and the rewrites a relay makes to them.
//
//   discovery query  01 "QueryForServer" 00        the client wants its reply on UDP 5002
//                    01 <decimal port> 00          the client wants it on that port; ports above
//                                                  32767 are written negative (a C `short`)
//   discovery reply  12 <name> [01 <decimal PORTBASE>] 00   the part after 01 only when != 5001
//   break            02 <decimal A> 00             A = client's IPv4 as a little-endian u32 (%lu);
//                                                  the server ignores A > 2147483647 (last octet >= 128)
//
// Numbers are read with the server's str2int rules (7.2): bytes <= ' ' skipped first, an optional
// sign, decimal digits, a magnitude <= 2147483647, then only bytes <= ' ' up to the NUL (or the end
// of the datagram). Nothing here throws or keeps state.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace edgerelay::tunnel::sql602 {

inline constexpr std::uint8_t sqp_for_server = 0x01;
inline constexpr std::uint8_t sqp_break = 0x02;
inline constexpr std::uint8_t sqp_server_name = 0x12;  ///< SQP_SERVER_NAME_CURRENT (WBVERS >= 950)
inline constexpr std::uint16_t default_reply_port = 5002;
inline constexpr std::uint16_t default_portbase = 5001;
/// The server reads at most this many bytes of a datagram.
inline constexpr std::size_t max_datagram = 512;

/// str2int (docs/602sql.md) over `text`, which ends at its first NUL or at its end.
std::optional<std::int32_t> parse_str2int(std::span<const std::uint8_t> text) noexcept;

/// The datagram's kind: its first byte (0 for an empty datagram).
std::uint8_t datagram_kind(std::span<const std::uint8_t> datagram) noexcept;

struct discovery_query {
  std::uint16_t reply_port = default_reply_port;  ///< where the client wants the reply (low 16 bits)
  bool named_port = false;                        ///< false: "QueryForServer" or no number (5002)
};

/// Parses `01 ...`; nullopt when the first byte is not 0x01. A text that is not a number means 5002.
std::optional<discovery_query> parse_discovery_query(std::span<const std::uint8_t> datagram) noexcept;

/// `01 <port> 00`, the port written as the stock client writes it (a signed short).
std::vector<std::uint8_t> encode_discovery_query(std::uint16_t reply_port);

struct discovery_reply {
  std::string name;
  std::uint16_t portbase = default_portbase;  ///< 5001 when the reply carries no `01 port` part
};

/// Parses `12 name [01 port] 00`; nullopt when the first byte is not 0x12 or the port is not a
/// number in 1..65535.
std::optional<discovery_reply> parse_discovery_reply(std::span<const std::uint8_t> datagram);

/// `12 name [01 port] 00`, the `01 port` part only when portbase != 5001. Names longer than 31
/// bytes are cut (the server's limit); bytes 00 and 01 in the name are dropped.
std::vector<std::uint8_t> encode_discovery_reply(const discovery_reply& reply);

/// The reply with its PORTBASE replaced (so a client connects to PORTBASE + 1 = the gateway's door).
std::optional<std::vector<std::uint8_t>> rewrite_discovery_reply(std::span<const std::uint8_t> datagram,
                                                                 std::uint16_t portbase);

using ipv4_bytes = std::array<std::uint8_t, 4>;  ///< network order: 10.9.0.7 is {10, 9, 0, 7}

/// True when the server can match a break for this address: the LE u32 fits str2int, that is the
/// last octet is below 128 (8.2).
constexpr bool breakable(const ipv4_bytes& a) noexcept {
  return a[3] < 128;
}

/// Parses `02 <decimal A> 00` into the address A names; nullopt for another first byte, a number
/// that does not parse, or one outside 0..2147483647 (the server would ignore it).
std::optional<ipv4_bytes> parse_break(std::span<const std::uint8_t> datagram) noexcept;

/// `02 <decimal A> 00` for `a`; nullopt when the server could not match it (!breakable(a)).
std::optional<std::vector<std::uint8_t>> encode_break(const ipv4_bytes& a);

}  // namespace edgerelay::tunnel::sql602
