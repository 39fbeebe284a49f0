// The PROXY header on a listener with `proxy_protocol` (docs/config.md): read before TLS and
// protocol detection, under the handshake timeout.
//
// From a source in `proxy_protocol.from` the header is required; the client it names becomes the
// session's peer, so rules, per_source, the access log and the metrics see the real client. LOCAL
// (a balancer's own health check) keeps the real peer. From any other source a header is refused,
// never taken: a connection that starts with a PROXY signature is closed.
#pragma once

#include <optional>
#include <string_view>

#include "proxy/core/context.hpp"
#include "proxy/observe/access_log.hpp"

namespace edgerelay::proxy {

/// True when `peer` is one of `l`'s proxy_protocol sources (false when `l` takes no headers).
bool trusted_balancer(const config::listener_config& l, const net::ip::address& peer);

/// How the gate at a proxy_protocol listener ended.
struct header_gate {
  bool pass = false;
  tcp::endpoint client;              ///< the session's peer from now on (the header's source, or the real peer)
  tcp::endpoint local;               ///< what the client connected to (the header's destination), if it said
  std::optional<proxied_by> origin;  ///< set when a balancer's header named the client
  outcome result = outcome::malformed;
  /// Why it did not pass: a codec error word, "proxy_header_missing", "proxy_header_untrusted", ...;
  /// empty for a client that sent nothing in time.
  std::string_view reason;
};

/// Reads the header a balancer at `ctx.peer` must send first, taking exactly its bytes from the
/// socket (peek, then read what the codec took), so the client's own bytes stay for the door.
net::awaitable<header_gate> read_proxy_header(tcp::socket& client, const session_context& ctx);

/// For a peer that is no balancer: waits for its first bytes (not for a forward listener, whose
/// server may speak first) and refuses them when they start with a PROXY signature. Reads nothing.
net::awaitable<header_gate> refuse_untrusted_header(tcp::socket& client, const session_context& ctx);

/// The one access record (and the metrics' count) of a connection the gate closed.
void record_refused_header(const header_gate& gate, const session_context& ctx);

/// Copies what a balancer's header said into the session's access record.
void record_proxied(const proxied_by& origin, access_record& rec);

}  // namespace edgerelay::proxy
