// Front doors: what a client's first bytes ask for.
//
// A door reads the handshake of the client's protocol (SOCKS4/4a/5, HTTP CONNECT, a forward
// door's none; inside TLS when the listener terminates it) under the handshake deadline, and
// returns one of: a request to dial, a connection to hand over (plain HTTP, UDP ASSOCIATE), or the
// end of the session (refused with the reply it owes, timed out, gone). After the dial it answers
// the request in the client's protocol. New doors (WebSocket, polling, the PROXY header) add a
// branch to open() and a reply to answer(); the pipeline does not change.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include "proxy/core/context.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/inbound/detect.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/inbound/door_leg.hpp"
#include "socks/server.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

class backend_kind;

/// A client's request for a tunnel to `where` (CONNECT; SOCKS BIND and the like are refused by
/// the pipeline with the door's command_not_supported reply).
struct request {
  socks::command cmd = socks::command::connect;
  target where;
  /// Set by a tunnel door (WebSocket, polling): the client's bytes travel in its messages, and it
  /// answers the request itself; null: they travel on the client stream, and answer() replies.
  std::unique_ptr<door_leg> client_leg;
};
/// A plain HTTP request (not CONNECT): serve_http() takes the connection over.
struct http_handoff {
  tunnel::request_head head;
};
/// A SOCKS5 UDP ASSOCIATE: serve_udp_associate() takes the connection over; `client_said` is its DST.
struct udp_handoff {
  target client_said;
};
/// The session ends at the door. `refusal` is what the client is owed first (an error reply, a
/// refused method or login); the pipeline writes it and lingers before the close
/// (reply_and_close), so data the client sent behind its request does not reset the reply away.
struct door_closed {
  door_closed() = default;
  explicit door_closed(outcome w, std::vector<std::uint8_t> r = {}) : why(w), refusal(std::move(r)) {}

  outcome why = outcome::malformed;
  std::vector<std::uint8_t> refusal;  ///< empty: close without a word
};
using door_result = std::variant<request, http_handoff, udp_handoff, door_closed>;

/// The reply that tells the client how its request ended.
struct door_reply {
  std::vector<std::uint8_t> bytes;  ///< nothing to send when empty
  bool owed = true;                 ///< the protocol requires a reply: empty bytes are a failure
};

/// A SOCKS reply's BND.ADDR/BND.PORT for `ep` (a v4-mapped address as the IPv4 it maps).
socks::bound_address socks_bound_address(const tcp::endpoint& ep);

/// The target an HTTP authority names: an address when it is an IP literal, else a name.
target from_authority(const tunnel::authority_target& a);

/// One session's front door: the handshake state of whichever protocol the client speaks. It
/// lives in the short-lived frame before the relay, so none of it stays with an idle tunnel.
class front_door {
 public:
  explicit front_door(const session_context& ctx);

  /// Reads and negotiates until the client asked for something; the caller starts `dl`'s phase
  /// (a result after it expired means the handshake timed out). Fills rec's protocol, target and
  /// user. Never throws.
  net::awaitable<door_result> open(tunnel::client_stream& client, access_record& rec, phase_deadline& dl);

  /// The reply to the request open() returned, for `result`; `upstream` is the connected upstream
  /// on success (SOCKS reports its local address as BND).
  door_reply answer(outcome result, const tcp::socket* upstream);

  /// Client bytes received behind the request: the start of the tunnel's upstream bytes.
  std::span<const std::uint8_t> leftover() const;

  /// The SOCKS codec, for a UDP association (it writes the association's reply).
  socks::socks_server& socks() noexcept { return socks_; }

 private:
  net::awaitable<door_result> open_forward(tunnel::client_stream& client, access_record& rec, phase_deadline& dl);
  net::awaitable<door_result> negotiate_socks(tunnel::client_stream& client, std::span<const std::uint8_t> first,
                                              access_record& rec, phase_deadline& dl);
  net::awaitable<door_result> negotiate_connect(tunnel::client_stream& client, std::span<const std::uint8_t> first,
                                                access_record& rec, phase_deadline& dl);
  door_reply socks_answer(outcome result, const tcp::socket* upstream);

  const session_context& ctx_;
  const config::backend_config* forward_;  ///< set on a forward door
  detected kind_ = detected::unknown;
  socks::socks_server socks_;
  std::optional<tunnel::request_head_reader> http_;
};

}  // namespace edgerelay::proxy
