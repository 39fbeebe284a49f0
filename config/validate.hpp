// Semantic checks that need a fully parsed config: rules that can never match.
#pragma once

#include <vector>

#include "load.hpp"

namespace edgerelay::config {

/// Warnings for rules that an earlier rule already covers (same or broader from, to, users and
/// listeners), so they can never decide anything. Conservative: only certain cases are reported.
std::vector<diagnostic> find_shadowed_rules(const config& cfg);

/// Warnings for open proxies, for `edgerelay check`: a listener that anyone outside can reach (bound
/// to a non-loopback address, not a `forward` door, `auth: none`, no required client certificate)
/// together with an allow rule that applies to it and matches any source (no `from`, or one
/// containing 0.0.0.0/0 or ::/0), any destination (no `to`, or `*`, 0.0.0.0/0 or ::/0 on any ports)
/// and no `users`. One warning per such listener, at the first such rule. Rule order is not
/// considered: an earlier deny may close the door, but the rule still says "open".
std::vector<diagnostic> find_open_proxies(const config& cfg);

/// Warnings for `edgerelay check`: rules that route via an upstream with `resolve: upstream` where
/// the decision needs an address the gateway never sees (a `to` of networks only, or an earlier
/// rule that names networks), so requests by name end up denied (docs/upstreams.md).
std::vector<diagnostic> find_unseen_addresses(const config& cfg);

}  // namespace edgerelay::config
