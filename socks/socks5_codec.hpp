// SOCKS5 wire codec, pure: greeting, RFC 1929 username/password, request, and the server's replies.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "parse_result.hpp"
#include "target.hpp"
#include "wire.hpp"

namespace edgerelay::socks {

/// VER NMETHODS METHODS (RFC 1928 section 3). Method values are kept as sent, unknown ones too.
struct socks5_greeting {
  std::vector<std::uint8_t> methods;  ///< 1-255 entries
  bool offers(method m) const;
  friend bool operator==(const socks5_greeting&, const socks5_greeting&) = default;
};

/// RFC 1929 section 2: VER(01) ULEN UNAME PLEN PASSWD.
struct userpass_request {
  std::string user;      ///< 1-255 bytes, raw
  std::string password;  ///< 0-255 bytes, raw; secret: never log
  friend bool operator==(const userpass_request&, const userpass_request&) = default;
};

/// RFC 1928 section 4: VER CMD RSV ATYP DST.ADDR DST.PORT.
struct socks5_request {
  command cmd = command::connect;
  target_address target;
  friend bool operator==(const socks5_request&, const socks5_request&) = default;
};

/// BND.ADDR of a reply: a server reports an address, never a name.
using bound_host = std::variant<ipv4_bytes, ipv6_bytes>;

/// Errors: VER != 5 (general_failure), NMETHODS == 0 (general_failure).
parse_result<socks5_greeting> parse_socks5_greeting(std::span<const std::uint8_t> in);

/// Errors: VER != 1, ULEN == 0 (all general_failure). PLEN == 0 is accepted although RFC 1929 says
/// 1-255: some clients send an empty password, and the credential check rejects it anyway, with a
/// proper status reply instead of a dropped connection.
parse_result<userpass_request> parse_userpass_request(std::span<const std::uint8_t> in);

/// Errors, decided as soon as the deciding byte is present (so the result does not depend on how
/// the input was split): VER != 5 (general_failure), CMD not 1/2/3 (command_not_supported),
/// ATYP not 1/3/4 (address_type_not_supported), domain length 0 (general_failure), a domain that is
/// not a valid host name (host_unreachable, see wire.hpp), decided once the whole address is in.
/// A numeric domain ("0", "0x7f.1", "2130706433", "::1") comes back as the address it denotes
/// (host_from_domain), so the request's target is an IPv4 or IPv6 address, not a string.
/// RSV is ignored, not checked: it is reserved, and Dante and most servers accept any value.
parse_result<socks5_request> parse_socks5_request(std::span<const std::uint8_t> in);

/// ATYP DST.ADDR DST.PORT alone, shared by the request and the UDP header (RFC 1928 sections 4, 7),
/// with the request's address errors and domain handling.
parse_result<target_address> parse_socks5_address(std::span<const std::uint8_t> in);

/// 05 METHOD.
std::array<std::uint8_t, 2> encode_method_selection(method m);

/// RFC 1929 status: 01 00 on success, 01 01 on failure.
std::array<std::uint8_t, 2> encode_auth_status(bool ok);

/// 05 REP 00 ATYP BND.ADDR BND.PORT: 10 bytes for IPv4, 22 for IPv6.
std::vector<std::uint8_t> encode_socks5_reply(reply_code rep, const bound_host& host, std::uint16_t port);

/// Appends ATYP ADDR PORT. Returns false (and appends nothing) for a domain of 0 or > 255 bytes.
bool append_socks5_address(std::vector<std::uint8_t>& out, const target_address& target);

/// Client side, for upstream chaining and tests: 01 ULEN UNAME PLEN PASSWD.
/// Empty result when user is empty or either field is longer than 255 bytes.
std::vector<std::uint8_t> encode_userpass_request(std::string_view user, std::string_view password);

/// Client side: 05 CMD 00 ATYP ADDR PORT. Empty result when the target cannot be encoded.
std::vector<std::uint8_t> encode_socks5_request(command cmd, const target_address& target);

}  // namespace edgerelay::socks
