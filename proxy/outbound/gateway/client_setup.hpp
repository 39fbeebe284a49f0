// edgerelay client's start: from the config and the environment to its dial plan.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "proxy/outbound/gateway/client_dial.hpp"

namespace edgerelay::proxy::gateway {

struct client_setup {
  std::unique_ptr<client_dial> plan;  ///< null when `errors` has any
  std::vector<std::string> notes;     ///< what the client will do, for the start-up log and --check
  std::vector<std::string> errors;    ///< each names the key or file at fault
};

/// Builds the plan for `cfg` (loaded with load_mode::client): reads the password files and the
/// gateway's certificates, takes the proxy from the config or `env` (https_proxy, http_proxy,
/// no_proxy), and lays out the candidates of the transport. Control thread: reads files.
client_setup make_client_setup(const config::config& cfg,
                               const std::function<std::optional<std::string>(std::string_view)>& env);

}  // namespace edgerelay::proxy::gateway
