// The plain TCP backend kind: egress leases.
#include "proxy/outbound/backend_kind.hpp"

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {

void tcp_backend_kind::lease_egress(const backend_session& s, dial_options& opts, egress_hold& hold,
                                    std::string_view exhausted_note) const {
  if (s.backend.egress.empty()) {
    return;
  }
  hold.egress = egress_->acquire(s.backend);
  if (hold.egress) {
    opts.bind = net::ip::address_v4(hold.egress.address());
  } else {
    log::warn("egress", "backend '", s.backend.name, "': every egress address is in use; the session from ",
              s.client_text, " connects from the default address", exhausted_note);
  }
}

std::unique_ptr<backend_hold> tcp_backend_kind::before_dial(const backend_session& s, dial_options& opts) const {
  auto hold = std::make_unique<egress_hold>();
  lease_egress(s, opts, *hold, "");
  return hold;
}

}  // namespace edgerelay::proxy
