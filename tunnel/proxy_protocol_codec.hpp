// PROXY protocol v1 (text) and v2 (binary) headers, as load balancers send them before the
// client's first byte (haproxy.org's proxy-protocol.txt), sans-I/O.
//
// The driver (proxy/inbound/proxy_header.cpp) loops: get some bytes -> parser.feed(bytes) ->
//   need_more -> every byte fed was header: get more, feed only the new ones;
//   done      -> header() holds what it said; `consumed` stops exactly at its last byte, so the
//                bytes behind it (the client's own protocol) were never taken;
//   failed    -> error() says why; the connection is closed.
// Strict: a byte out of place is an error, never guessed around. The encoder writes v2 headers
// (a backend's send_proxy, and the tests).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edgerelay::tunnel {

/// v1's limit, CRLF included (proxy-protocol.txt 2.1).
inline constexpr std::size_t proxy_v1_max_bytes = 107;
/// What this parser accepts of v2's 16-bit length: addresses, the TLVs load balancers send (SSL
/// block, AUTHORITY, UNIQUE_ID) and room to spare, while a session's header stays small.
inline constexpr std::size_t proxy_v2_max_bytes = 16 + 2048;
/// The 12-byte v2 signature.
inline constexpr std::array<std::uint8_t, 12> proxy_v2_signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum class proxy_error : std::uint8_t {
  none,
  bad_signature,       ///< neither "PROXY " nor the v2 signature
  v1_too_long,         ///< no CRLF within 107 bytes
  v1_bad_line,         ///< not "PROXY <proto> <src> <dst> <sport> <dport>\r\n" with single spaces
  v1_bad_protocol,     ///< not TCP4, TCP6 or UNKNOWN
  v1_bad_address,      ///< an address that is not a literal of the stated family
  v1_bad_port,         ///< not a decimal 0-65535 without leading zeros
  v2_bad_version,      ///< version nibble is not 2
  v2_bad_command,      ///< command nibble is neither LOCAL nor PROXY
  v2_bad_family,       ///< an address family or transport this gateway does not take (UNIX, DGRAM)
  v2_too_long,         ///< the stated length passes proxy_v2_max_bytes
  v2_short_addresses,  ///< the stated length is shorter than the family's address block
  v2_tlv_truncated,    ///< a TLV's length runs past the header
  v2_bad_tlv,          ///< a known TLV with a value of the wrong size or form
  v2_crc_mismatch,     ///< a CRC32C TLV that does not match the header
};

/// The reason word the access log and the metrics use ("bad_signature", "v2_crc_mismatch", ...).
std::string_view to_string(proxy_error e) noexcept;

/// An IPv4 or IPv6 address and port as the header carried them (network order bytes).
struct proxy_address {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  ///< v4 uses bytes[0..3]
  std::uint16_t port = 0;
  friend bool operator==(const proxy_address&, const proxy_address&) = default;
};

/// The v2 SSL TLV: how the client reached the load balancer.
struct proxy_ssl {
  std::uint8_t client = 0;   ///< PP2_CLIENT_SSL (0x01), _CERT_CONN (0x02), _CERT_SESS (0x04) bits
  std::uint32_t verify = 0;  ///< 0: the client's certificate was verified (when one was sent)
  std::string version;       ///< PP2_SUBTYPE_SSL_VERSION, "TLSv1.3"
  std::string cn;            ///< PP2_SUBTYPE_SSL_CN, the client certificate's common name
  std::string cipher;
  std::string sig_alg;
  std::string key_alg;
  friend bool operator==(const proxy_ssl&, const proxy_ssl&) = default;
};

struct proxy_header {
  std::uint8_t version = 0;  ///< 1 or 2
  /// False for LOCAL (a balancer's own health check), v1 UNKNOWN and v2 UNSPEC: the connection's
  /// real endpoints stand, and `source`/`destination` are unset.
  bool proxied = false;
  proxy_address source;       ///< the client
  proxy_address destination;  ///< what the client connected to
  std::string alpn;
  std::string authority;  ///< PP2_TYPE_AUTHORITY: the host name the client asked for (SNI)
  std::string unique_id;  ///< PP2_TYPE_UNIQUE_ID, at most 128 bytes
  std::optional<proxy_ssl> ssl;
  bool crc_checked = false;  ///< a CRC32C TLV was present and matched
  friend bool operator==(const proxy_header&, const proxy_header&) = default;
};

class proxy_header_parser {
 public:
  enum class status : std::uint8_t { need_more, done, failed };
  struct result {
    status state = status::need_more;
    std::size_t consumed = 0;  ///< bytes of this feed that belonged to the header
  };

  /// Takes bytes up to the header's end; after done or failed it takes nothing.
  result feed(std::span<const std::uint8_t> in);

  const proxy_header& header() const noexcept { return header_; }
  proxy_error error() const noexcept { return error_; }

 private:
  result fail(proxy_error e, std::size_t consumed);
  result finish_v1(std::size_t consumed);
  result finish_v2(std::size_t consumed);

  std::vector<std::uint8_t> buf_;
  std::size_t v2_total_ = 0;  ///< whole v2 header length, once its first 16 bytes are in
  status state_ = status::need_more;
  proxy_error error_ = proxy_error::none;
  proxy_header header_;
};

/// What the first bytes of a connection look like, for a source that must not send a header.
enum class proxy_signature : std::uint8_t { absent, partial, present };
/// `present` when `first` starts with "PROXY " or the v2 signature; `partial` when it is a strict
/// prefix of either (more bytes decide); `absent` otherwise.
proxy_signature detect_proxy_signature(std::span<const std::uint8_t> first) noexcept;

/// A v2 header for `h` (version ignored): PROXY with INET/INET6 STREAM addresses when
/// h.proxied, else LOCAL with UNSPEC; then the ALPN, AUTHORITY, UNIQUE_ID and SSL TLVs that are
/// set, and a CRC32C TLV when `with_crc`. Throws std::length_error past proxy_v2_max_bytes.
std::vector<std::uint8_t> encode_proxy_v2(const proxy_header& h, bool with_crc = false);

/// CRC32C (Castagnoli), as the v2 CRC32C TLV uses it.
std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc = 0) noexcept;

}  // namespace edgerelay::tunnel
