// SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): one association per control connection.
//
// The relay address in the reply is a UDP socket bound to the IP the client reached the gateway on.
// Only the associating client (its TCP address, and the port it named or else the first one it sent
// from) may send there; each datagram's target is decided by the rules as a CONNECT's would be (the
// name first, then each resolved address) and its payload sent on from a second socket. Datagrams
// that come back from a target this association sent to are wrapped in the header naming their
// source and sent to the client. Everything else (FRAG != 0, malformed, denied, strangers) is
// dropped and counted. The association ends when its TCP connection closes or goes idle.
//
// Each association follows the rules of the snapshot it started under; a reload with
// `recheck_sessions` makes every live one follow the new snapshot and closes those that relayed to a
// destination the new rules deny (udp_associations).
#pragma once

#include <cstddef>
#include <memory>

#include "proxy/observe/access_log.hpp"
#include "proxy/core/asio.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/core/context.hpp"
#include "socks/server.hpp"

namespace edgerelay::proxy {

/// The live associations of one worker, for a reload's recheck (the session registry owns the
/// list). Intrusive: each association lists itself for its whole life, no allocation.
/// Single-threaded: the worker's.
class udp_associations {
 public:
  class member {
   public:
    member(const member&) = delete;
    member& operator=(const member&) = delete;

   protected:
    explicit member(udp_associations* list) noexcept;  ///< null: listed nowhere
    virtual ~member();

   private:
    friend class udp_associations;
    /// From now on the association decides its datagrams under `now`'s rules, and decides again
    /// each destination it relayed to. True when one is now denied: it was closed.
    virtual bool follow(const std::shared_ptr<const runtime_snapshot>& now) = 0;

    udp_associations* list_;
    member* prev_ = nullptr;
    member* next_ = nullptr;
  };

  udp_associations() = default;
  udp_associations(const udp_associations&) = delete;
  udp_associations& operator=(const udp_associations&) = delete;

  /// Every live association follows `now`; returns how many were closed because they relayed to
  /// a destination its rules deny.
  std::size_t recheck(const std::shared_ptr<const runtime_snapshot>& now);

  std::size_t size() const noexcept { return size_; }

 private:
  member* head_ = nullptr;
  std::size_t size_ = 0;
};

/// Serves one association on `client`, whose request `socks` has decoded (it is in the connecting
/// state and sends the reply). `client_said` is the request's DST: where the client will send from
/// (its port is used when non-zero; the address is always the TCP peer's). `dl` bounds the reply
/// and each name resolution; the caller settles it. Fills `rec` (protocol "socks5-udp", result,
/// payload bytes both ways, the deciding rule of the first datagram). The association lists itself
/// in `ctx.services->associations` and borrows its receive buffers from `ctx.services->pools`
/// only while datagrams move. Never throws.
net::awaitable<void> serve_udp_associate(tunnel::client_stream& client, socks::socks_server& socks,
                                         const target& client_said, const session_context& ctx, access_record& rec,
                                         phase_deadline& dl);

}  // namespace edgerelay::proxy
