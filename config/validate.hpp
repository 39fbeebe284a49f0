// Semantic checks that need a fully parsed config: rules that can never match.
#pragma once

#include <vector>

#include "load.hpp"

namespace edgerelay::config {

/// Warnings for rules that an earlier rule already covers (same or broader from, to, users and
/// listeners), so they can never decide anything. Conservative: only certain cases are reported.
std::vector<diagnostic> find_shadowed_rules(const config& cfg);

}  // namespace edgerelay::config
