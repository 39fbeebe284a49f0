// SOCKS5 client side, sans-I/O (RFC 1928, RFC 1929): what a gateway says to an upstream SOCKS5
// server to reach the next target, and how it reads the answers.
//
// The driver (proxy/outbound/hops) loops: send start(); then read exactly wanted() bytes (never
// more, so no tunnel byte is taken from the stream) -> feed(bytes) -> act on the step:
//   need_more -> read wanted() more bytes and feed them
//   send      -> write the bytes, then feed({}) (an answer may already be buffered) and go on
//   connected -> the tunnel is up; leftover() holds bytes fed behind the final reply (none when
//                the driver read exactly wanted())
//   failed    -> the server refused or broke the protocol; close the stream
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "parse_result.hpp"
#include "socks5_codec.hpp"
#include "target.hpp"
#include "wire.hpp"

namespace edgerelay::socks {

/// Why a client handshake with an upstream failed.
enum class client_failure : std::uint8_t {
  refused,        ///< the server answered the request with a failure code (REP, CD, HTTP status)
  auth_rejected,  ///< the server did not accept the credentials (RFC 1929 status, SOCKS4 5D, HTTP 407)
  auth_required,  ///< the server asked for a method we cannot offer (SOCKS5 0xFF, or 02 without credentials)
  protocol,       ///< the reply does not parse, or is not what was asked for
};

/// Static text for logs.
std::string_view to_string(client_failure) noexcept;

namespace client_step {
struct need_more {};
struct send {
  std::vector<std::uint8_t> bytes;  ///< may hold a password (RFC 1929): never log it
};
struct connected {
  std::optional<bound_host> bound;  ///< BND.ADDR as reported; nullopt when it was a name
  std::uint16_t bound_port = 0;
};
struct failed {
  client_failure why = client_failure::protocol;
  std::uint8_t code = 0;  ///< the server's reply code, where it sent one
  std::string_view what;  ///< static text for logs
};
}  // namespace client_step

using client_step_t =
    std::variant<client_step::need_more, client_step::send, client_step::connected, client_step::failed>;

/// A SOCKS5 server's reply to a request (RFC 1928 section 6).
struct socks5_reply {
  std::uint8_t rep = 0;
  std::optional<bound_host> bound;  ///< nullopt for ATYP 3 (a name)
  std::uint16_t port = 0;
  friend bool operator==(const socks5_reply&, const socks5_reply&) = default;
};

/// 05 METHOD. Errors: VER != 5.
parse_result<std::uint8_t> parse_method_selection(std::span<const std::uint8_t> in);
/// 01 STATUS (RFC 1929). Errors: VER != 1. The value is STATUS (0: success).
parse_result<std::uint8_t> parse_auth_status(std::span<const std::uint8_t> in);
/// 05 REP RSV ATYP BND.ADDR BND.PORT. Errors: VER != 5, ATYP not 1/3/4, a zero-length name.
/// A name in BND.ADDR is skipped, not judged: the gateway never dials it.
parse_result<socks5_reply> parse_socks5_reply(std::span<const std::uint8_t> in);

struct socks5_client_options {
  std::string user;      ///< empty: offer "no authentication" only
  std::string password;  ///< secret
};

/// One CONNECT handshake with a SOCKS5 server, as the client.
class socks5_client {
 public:
  socks5_client(socks5_client_options options, target_address target);

  /// The greeting: 05 01 00, or 05 02 00 02 with credentials. Call once, first.
  std::vector<std::uint8_t> start();
  /// Takes the bytes read since the last call (the driver may pass any split).
  client_step_t feed(std::span<const std::uint8_t> in);
  /// How many more bytes the current message needs at least; reading exactly this many never
  /// takes a byte past the final reply. 0 once connected or failed.
  std::size_t wanted() const noexcept;
  /// Bytes fed behind the final reply, once connected.
  std::span<const std::uint8_t> leftover() const noexcept;

 private:
  enum class phase : std::uint8_t { greeting, method, auth, reply, connected, failed };
  client_step_t advance();
  /// The CONNECT request, once a method (and its login) is settled.
  client_step_t send_request();
  client_step_t fail(client_failure why, std::uint8_t code, std::string_view what);

  socks5_client_options options_;
  target_address target_;
  phase phase_ = phase::greeting;
  std::vector<std::uint8_t> buffer_;
  std::size_t wanted_ = 0;
};

}  // namespace edgerelay::socks
