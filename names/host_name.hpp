// Classifies a host string a client sent: an RFC 1123 name, an IPv4 address in any inet_aton form, an IPv6 literal, or invalid.
//
// Why this exists: the codecs hand hosts to policy (which matches names as text) and then to
// getaddrinfo (which reads numbers the C library way). A host both could read differently is a
// policy bypass: "localhost\0.corp.example" matches "*.corp.example" but resolves as "localhost";
// "2130706433" is a name to policy and 127.0.0.1 to getaddrinfo. classify_host() gives every host
// exactly one reading, and the codecs refuse or convert before anything else sees it.
//
// Pure, standard library only, no allocation, no locale: the C library's parsers are deliberately
// not called, so the rules are the same everywhere and the tests can compare them exhaustively
// against ::inet_aton and ::inet_pton.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgerelay::names {

/// RFC 1035 section 2.3.4 / RFC 1123 section 2.1 limits, trailing dot not counted.
inline constexpr std::size_t max_name_length = 253;
inline constexpr std::size_t max_label_length = 63;

using ipv4_bytes = std::array<std::uint8_t, 4>;   ///< network order
using ipv6_bytes = std::array<std::uint8_t, 16>;  ///< network order

enum class host_kind : std::uint8_t { dns_name, ipv4, ipv6, invalid };

struct classified_host {
  host_kind kind = host_kind::invalid;
  ipv4_bytes v4{};       ///< kind == ipv4 only
  ipv6_bytes v6{};       ///< kind == ipv6 only
  std::string_view why;  ///< kind == invalid only: static text for logs, never client data
};

/// The one reading of `host`, checked in this order:
///  * "[...]" : ipv6 when the inside is an IPv6 literal (parse_ipv6_literal), else invalid.
///  * any ':' : ipv6 when the whole string is an IPv6 literal, else invalid.
///  * any byte other than ASCII letters, digits, '-', '_' and '.' (NUL, space, '%', '/', '@',
///    control, non-ASCII, ...): invalid.
///  * ends in a number (the last label, ignoring one trailing dot, is all decimal digits or "0x"
///    followed by hex digits): ipv4 when the whole string is an inet_aton form
///    (parse_ipv4_numeric), else invalid. So "256.1.1.1", "1.2.3.4.5", "08", "0x", "a.1" and
///    "127.0.0.1." are refused, never looked up as names: RFC 1123 section 2.1 says a real name
///    never ends in a numeric label, and glibc's getaddrinfo would read some of them as numbers.
///  * otherwise a dns_name when its dot-separated labels are 1-63 bytes and the whole at most 253
///    (one trailing dot allowed, not counted), else invalid.
/// Hyphen position and letter case are not judged: they cannot change which address a name
/// denotes, and policy compares names case-insensitively.
/// Property (tested exhaustively on short strings): whatever ::inet_aton or ::inet_pton(AF_INET6)
/// accept is never a dns_name, and comes back as the same address (except inet_aton's leniency
/// for trailing whitespace, which is invalid here).
classified_host classify_host(std::string_view host) noexcept;

/// The whole of `text` as glibc's inet_aton reads it, without its trailing-whitespace leniency:
/// 1-4 dot-separated parts, each decimal, octal ("0" prefix) or hex ("0x"/"0X" prefix); every part
/// but the last is one byte, the last fills the remaining bytes ("127.1" = 127.0.0.1,
/// "2130706433" = 127.0.0.1, "0x7f.1" = 127.0.0.1, "0177.0.0.1" = 127.0.0.1, "0" = 0.0.0.0).
std::optional<ipv4_bytes> parse_ipv4_numeric(std::string_view text) noexcept;

/// An IPv6 literal as inet_pton(AF_INET6) reads it: hex groups of 1-4 digits, at most one "::",
/// an optional dotted-quad tail of strict decimal (no leading zeros); no brackets, no zone ("%eth0").
std::optional<ipv6_bytes> parse_ipv6_literal(std::string_view text) noexcept;

/// "127.0.0.1": the canonical text a numeric IPv4 form is rewritten to.
std::string to_dotted_quad(const ipv4_bytes& address);

}  // namespace edgerelay::names
