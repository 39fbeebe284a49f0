// socks_server: the per-session SOCKS4/4a/5 state machine, sans-I/O (no sockets, no clock).
//
// The driver (proxy/inbound/socks_door.cpp) loops: read bytes -> feed() -> act on the step:
//   need_more     -> read more bytes and feed() them
//   send          -> write `bytes` in ONE write; if close_after, close; else if established(), the
//                    handshake is over (take leftover()); else call feed({}) to go on
//   authenticate  -> check the credentials, then on_auth(ok)
//   connect       -> apply policy and dial, then on_connect(code, bound) -> a `send` step with the reply
//                    (a SOCKS5 BIND: listen, on_bind_listening(where) -> the first reply; when the
//                    expected peer connected, on_connect(code, peer) -> the second)
//   failed        -> close at once (nothing can be replied)
// After the success reply the state is `established` and leftover() holds bytes the client sent
// right behind its request (they belong to the tunnel).
// A call that does not fit the current state (feed() while authenticating or once established,
// on_auth() without an authenticate step, ...) returns `failed` and closes the machine; nothing
// throws. Input that never becomes a message is bounded (SOCKS4 fields <= 255 bytes, max_buffered).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "target.hpp"
#include "wire.hpp"

namespace edgerelay::socks {

struct server_options {
  bool accept_socks5 = true;
  bool accept_socks4 = true;
  bool require_password = false;  ///< SOCKS5 must use RFC 1929; SOCKS4 is answered 0x5D
  /// Cap on unparsed input held before `established` (feed() beyond it -> failed). One handshake
  /// message is at most 520 bytes; the rest is room for payload a client pipelines behind its
  /// request and the driver reads in the same read.
  std::size_t max_buffered = 64 * 1024;
};

/// The address reported in a reply (BND.ADDR/BND.PORT).
struct bound_address {
  std::variant<ipv4_bytes, ipv6_bytes> host = ipv4_bytes{};
  std::uint16_t port = 0;
};

namespace step {
struct need_more {};
struct send {
  std::vector<std::uint8_t> bytes;
  bool close_after = false;
};
struct authenticate {
  std::string user;
  std::string password;  ///< secret: never log
};
struct connect {
  command cmd = command::connect;
  target_address target;
  std::string user;  ///< SOCKS5: the authenticated user; SOCKS4: the USERID field
};
struct failed {
  std::string_view reason;  ///< static text for logs
};
}  // namespace step

using step_t = std::variant<step::need_more, step::send, step::authenticate, step::connect, step::failed>;

enum class version : std::uint8_t { unknown = 0, v4 = 4, v5 = 5 };

class socks_server {
 public:
  explicit socks_server(server_options options);

  /// Append `in` (may be empty) to the pending input and advance as far as it allows.
  step_t feed(std::span<const std::uint8_t> in);

  /// Answer to an `authenticate` step: the RFC 1929 status reply (close_after when !ok).
  step_t on_auth(bool ok);

  /// Answer to a `connect` step. `code` is the SOCKS5 outcome; for SOCKS4 it maps to 0x5A (success)
  /// or 0x5B (anything else). Returns the reply as a `send` step, close_after unless succeeded.
  step_t on_connect(reply_code code, const bound_address& bound);

  /// The first of a SOCKS5 BIND's two replies (RFC 1928 section 4): succeeded, with the address and
  /// port the gateway listens on for the peer. Only after a BIND `connect` step, once; the machine
  /// then waits for on_connect() with the peer's address (or a failure). Anything else -> failed.
  step_t on_bind_listening(const bound_address& listening);

  /// Bytes received beyond the request, valid once established.
  std::span<const std::uint8_t> leftover() const;

  version protocol_version() const { return version_; }
  bool established() const { return state_ == state::established; }

 private:
  enum class state : std::uint8_t {
    greeting,
    userpass,
    request,
    authenticating,
    connecting,
    awaiting_peer,  ///< a BIND's first reply is out; the second follows the peer's connect
    established,
    closed
  };
  step_t advance();
  step_t on_greeting(std::span<const std::uint8_t> input);
  step_t on_userpass(std::span<const std::uint8_t> input);
  step_t on_socks5_request(std::span<const std::uint8_t> input);
  step_t on_socks4_request(std::span<const std::uint8_t> input);
  step_t reply(std::vector<std::uint8_t> bytes, bool close_after);
  step_t fail(std::string_view reason);

  server_options options_;
  state state_ = state::greeting;
  version version_ = version::unknown;
  std::vector<std::uint8_t> pending_;  ///< unparsed input
  std::size_t consumed_ = 0;           ///< bytes of pending_ already parsed
  std::string user_;
  command cmd_ = command::connect;  ///< the request's command, once one was parsed
};

}  // namespace edgerelay::socks
