// Dial plans: how a session reaches its upstream.
//
// The pipeline asks a plan for a connected upstream and never learns which plan it was. Today's
// one plan dials directly; upstream chains (`via`) and the client mode's gateway hops are plans
// beside it, chosen by plan_for(), not branches in the pipeline.
#pragma once

#include <memory>
#include <optional>

#include "proxy/core/context.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/access_log.hpp"
#include "proxy/outbound/backend_kind.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/relay/message_leg.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// A connected (and, for a TLS backend, secured) upstream, or the outcome that says why not.
struct dialled_upstream {
  outcome result = outcome::general_failure;
  std::optional<tunnel::client_stream> stream;  ///< set on success, unless `leg` is
  /// Set on success instead of `stream` by a plan whose upstream travels in messages (the client
  /// mode's WebSocket or polling tunnel to its gateway).
  std::unique_ptr<message_leg> leg;
  session_identity identity;           ///< what the decision rested on, for recheck on reload
  std::unique_ptr<backend_hold> hold;  ///< the backend kind's share of the session (may be null)
};

class dial_plan {
 public:
  virtual ~dial_plan() = default;
  /// Connects `who`'s session to `where` (a backend's when route_to_backend() named one), with the
  /// rules decided on every address it dials. Every step belongs to `dl`'s current phase, which
  /// the caller started with the connect timeout. Records the rule, the dialled address, the
  /// result and its detail in `rec`. Never throws.
  virtual net::awaitable<dialled_upstream> dial(const session_context& ctx, const dial_identity& who,
                                                const target& where, access_record& rec, phase_deadline& dl) const = 0;
};

/// From the gateway straight to the target: the backend kind's hooks (egress lease, break
/// registration), its health, the connector, and the backend's TLS.
class direct_dial final : public dial_plan {
 public:
  net::awaitable<dialled_upstream> dial(const session_context& ctx, const dial_identity& who, const target& where,
                                        access_record& rec, phase_deadline& dl) const override;
};

/// The plan for a session to `where`.
const dial_plan& plan_for(const session_context& ctx, const target& where);

}  // namespace edgerelay::proxy
