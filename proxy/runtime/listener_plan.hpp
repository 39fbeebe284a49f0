// What a reload does to the listeners, worked out from the two configs before anything is opened,
// so that a bind failure can leave every running listener as it was.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// A bind or udp_bind key as the address it names. Throws std::runtime_error when its host is not
/// an IP address (validated configs only have those).
tcp::endpoint endpoint_of_spec(const config::endpoint_spec& spec);

/// One listener of the new config.
struct listener_step {
  std::string name;
  /// The old listener it carries on from: the same name, else a removed listener on the same fixed
  /// address (a rename). Empty when it is new.
  std::string predecessor;
  bool keep_acceptors = false;  ///< the predecessor's acceptors carry on (same address)
  /// The old listener whose udp_bind socket carries on for this one (the same udp_bind address:
  /// the predecessor's, else a closing one's). Empty: a new socket is bound when it has udp_bind.
  std::string udp_from;
};

struct listener_plan {
  std::vector<listener_step> steps;  ///< one per listener of the new config, in its order
  /// Old listeners whose acceptors close: removed, renamed onto another address, or moved.
  std::vector<std::string> close;
  /// Old listeners whose udp_bind socket closes.
  std::vector<std::string> close_udp;
};

/// Compares listeners by name and address: port 0 (any free port) counts as the same address only
/// for the same name, since two listeners of port 0 never shared one.
listener_plan plan_listeners(const config::config& before, const config::config& after);

}  // namespace edgerelay::proxy
