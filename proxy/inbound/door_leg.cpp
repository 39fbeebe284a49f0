// In-band breaks of the tunnel doors.
#include "proxy/inbound/door_leg.hpp"

#include "proxy/observe/log.hpp"
#include "proxy/outbound/backend_kind.hpp"

namespace edgerelay::proxy {

void inband_breaks::forward(std::string_view door, std::string_view peer) {
  const break_result r = hold_ != nullptr ? hold_->send_break() : break_result::not_breakable;
  switch (r) {
    case break_result::sent: ++sent_; return;
    case break_result::too_soon:
      log::debug(door, "break from ", peer, " dropped: the session's last break was under 500 ms ago");
      return;
    case break_result::not_breakable:
      if (!ignored_logged_) {
        ignored_logged_ = true;
        log::info(door, "break from ", peer,
                  " ignored: the session is not to a 602SQL backend, or its address cannot be named in a break "
                  "(logged once per session)");
      }
      return;
    case break_result::failed:
      if (!failure_logged_) {
        failure_logged_ = true;
        log::warn(door, "break from ", peer, " could not be sent to the backend (logged once per session)");
      }
      return;
  }
}

}  // namespace edgerelay::proxy
