// Features the config format has and this runtime does not run yet.
#include "proxy/runtime/capabilities.hpp"

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {

std::vector<std::string> unsupported_features(const config::config& cfg) {
  std::vector<std::string> out;
  const auto refuse = [&out, &cfg](const config::source_mark& at, std::string_view what) {
    const std::string& file = at.file.empty() ? cfg.source : at.file;
    const std::string where = at.line > 0 ? concat(file, ':', at.line, ':', at.column) : file;
    out.push_back(concat(where, ": ", what, " is not supported by this build of edgerelay yet"));
  };
  for (const auto& r : cfg.rules) {
    if (!r.via.empty()) refuse(r.mark, concat("rule '", r.name, "': via (upstream chaining)"));
  }
  return out;
}

}  // namespace edgerelay::proxy
