// HTTP Basic credentials (RFC 7617) in a Proxy-Authorization value: strict parse, and encode for tests and clients.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace edgerelay::tunnel {

/// Bounds shared with SOCKS5 RFC 1929 (one length byte each), so one user table serves both.
inline constexpr std::size_t max_basic_user = 255;
inline constexpr std::size_t max_basic_password = 255;

/// Decoded credentials. `password` is a secret: never log it, never put it in an error message.
struct credentials {
  std::string user;      ///< 1-255 bytes, no ':' and no control characters
  std::string password;  ///< 0-255 bytes, no control characters
};

enum class basic_auth_error : std::uint8_t {
  not_basic,   ///< scheme is not "Basic" (case-insensitive) or no credentials follow it
  bad_base64,  ///< not canonical base64 (alphabet, length multiple of 4, padding, zero pad bits)
  no_colon,    ///< decoded text has no ':' separating user and password
  empty_user,
  bad_character,  ///< a control character (0x00-0x1F, 0x7F) in user or password
  too_long,       ///< encoded or decoded parts over the bounds above
};

/// Static text for logs (no secret in it).
std::string_view to_string(basic_auth_error);

using basic_auth_result = std::variant<credentials, basic_auth_error>;

/// Parses a Proxy-Authorization field value: "Basic" 1*SP token68 [OWS]. The user is the text
/// before the first ':' (RFC 7617 section 2), the password everything after it (may contain ':').
basic_auth_result parse_basic_auth(std::string_view field_value);

/// "Basic <base64(user:password)>", for the client mode's outbound tunnel and for tests.
std::string encode_basic_auth(std::string_view user, std::string_view password);

}  // namespace edgerelay::tunnel
