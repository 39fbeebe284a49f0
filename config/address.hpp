// Address vocabulary shared by config loading, the policy engine and the runtime: IPs, CIDRs, ports, host patterns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "model.hpp"

namespace edgerelay::config {

/// Parse a literal IPv4 ("10.0.0.1") or IPv6 ("2001:db8::1", no brackets, no zone) address.
/// IPv4-mapped IPv6 (::ffff:a.b.c.d) comes back folded to IPv4. Never allocates; noexcept.
std::optional<ip_address> parse_ip_address(std::string_view text) noexcept;

/// Same, but also accepts a bracketed IPv6 literal ("[::1]"), as clients write it in a target.
std::optional<ip_address> parse_ip_literal(std::string_view text) noexcept;

/// Fold ::ffff:a.b.c.d to a.b.c.d; any other address is returned unchanged. Use it on addresses
/// built from raw socket bytes, which may still carry the mapped form.
ip_address fold_v4_mapped(const ip_address& address) noexcept;

// Destinations the connector never dials. Each takes an address folded or not:
// ::ffff:a.b.c.d is judged as a.b.c.d, because the kernel delivers it to that IPv4 address.

/// 0.0.0.0/8 ("this network", RFC 1122 3.2.1.3), :: and ::ffff:0.0.0.0/104. Linux delivers a
/// connect() to any of them to a local listener, so a rule denying loopback would not hold.
bool is_unspecified_range(const ip_address& address) noexcept;

/// 224.0.0.0/4 and ff00::/8: no TCP peer lives there.
bool is_multicast(const ip_address& address) noexcept;

/// 255.255.255.255, the limited broadcast (RFC 919).
bool is_limited_broadcast(const ip_address& address) noexcept;

/// Dotted quad for IPv4, RFC 5952 text for IPv6 (lower case, longest zero run compressed).
std::string to_string(const ip_address& address);

/// An address with a prefix length; host bits are always zero.
struct cidr {
  ip_address base;
  std::uint8_t prefix = 0;  ///< 0-32 for IPv4, 0-128 for IPv6
  friend bool operator==(const cidr&, const cidr&) = default;
};

/// "10.1.0.0/16", "2001:db8::/32", or a bare address (= /32 or /128). IPv4-mapped IPv6 networks
/// of prefix >= 96 are folded to IPv4. Host bits set ("10.1.2.3/16") are an error, because they
/// usually mean a typo. On failure `why` (if given) says what was wrong.
std::optional<cidr> parse_cidr(std::string_view text, std::string* why = nullptr);

/// True when `address` (folded) is inside `net`. IPv4 networks never contain IPv6 addresses and
/// the other way round: "::/0" is every IPv6 address, "0.0.0.0/0" every IPv4 address.
bool contains(const cidr& net, const ip_address& address) noexcept;

/// True when every address of `inner` is in `outer`.
bool contains(const cidr& outer, const cidr& inner) noexcept;

std::string to_string(const cidr& net);

/// An inclusive port range; the default is every port.
struct port_range {
  std::uint16_t first = 0;
  std::uint16_t last = 65535;
  bool contains(std::uint16_t port) const noexcept { return port >= first && port <= last; }
  bool contains(const port_range& other) const noexcept { return other.first >= first && other.last <= last; }
  bool is_any() const noexcept { return first == 0 && last == 65535; }
  friend bool operator==(const port_range&, const port_range&) = default;
};

/// "443" or "5000-5010" (0-65535, first <= last).
std::optional<port_range> parse_port_range(std::string_view text, std::string* why = nullptr);

/// A decimal port number 0-65535.
std::optional<std::uint16_t> parse_port(std::string_view text) noexcept;

/// "host:port" or "[v6]:port" where host is a literal IP address, as in `bind` and `udp_bind`.
/// The returned host is the address text without brackets. Port 0 is allowed (tests bind port 0).
std::optional<endpoint_spec> parse_endpoint(std::string_view text, std::string* why = nullptr);

/// A target as a client or the command line names it: "db.internal:5002", "10.0.0.1:80",
/// "[::1]:443". The host may be a name or a literal (brackets removed); the port is required.
struct host_port {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<host_port> parse_host_port(std::string_view text, std::string* why = nullptr);

/// Lower-case ASCII and strip one trailing dot: "DB.Internal." -> "db.internal".
std::string normalize_host(std::string_view host);

/// True for a syntactically valid DNS name (labels of letters, digits, '-' and '_', 1-63 chars,
/// 253 in all; one trailing dot allowed).
bool is_valid_host_name(std::string_view host) noexcept;

/// Case-insensitive host comparison that ignores one trailing dot on either side; no allocation.
bool host_equals(std::string_view a, std::string_view b) noexcept;

/// True when `host` is a proper subdomain of `suffix` ("a.corp.example" of "corp.example", but not
/// "corp.example" itself); case-insensitive, trailing dots ignored, no allocation.
bool host_is_subdomain_of(std::string_view host, std::string_view suffix) noexcept;

/// One entry of a rule's `to` list, parsed (DESIGN.md section 3).
enum class target_kind : std::uint8_t {
  any,         ///< "*" or "*:443": every host and address
  backend,     ///< "backend:NAME": the request host equals the backend name
  host,        ///< "db.internal[:port]": exactly this name
  subdomains,  ///< "*.corp.example[:port]": any proper subdomain
  network,     ///< "10.2.0.0/24[:ports]", "[2001:db8::/32]:443", "[::1]": needs the dialled address
};

struct target_pattern {
  target_kind kind = target_kind::any;
  std::string name;  ///< backend name, host, or subdomain suffix; lower case, no trailing dot
  cidr network;      ///< kind == network only
  port_range ports;  ///< every port when the entry names none
};

/// Parse one `to` entry. A bracket-less entry with several ':' is an IPv6 address or CIDR without
/// a port. "backend:" always starts a backend reference. On failure `why` says what was wrong.
std::optional<target_pattern> parse_target_pattern(std::string_view text, std::string* why = nullptr);

/// True when every request `inner` matches is also matched by `outer` (for shadowed-rule checks;
/// conservative: false when unsure).
bool covers(const target_pattern& outer, const target_pattern& inner) noexcept;

}  // namespace edgerelay::config
