// What this build of the runtime can do with a config: keys that validate but are not built yet
// must stop the gateway, never be ignored (a `tls:` listener served in plaintext would be a hole).
#pragma once

#include <string>
#include <vector>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// One message per configured feature this build does not implement, naming where it is
/// ("listener 'edge': tls is not supported by this build"). Empty: the config can run.
std::vector<std::string> unsupported_features(const config::config& cfg);

}  // namespace edgerelay::proxy
