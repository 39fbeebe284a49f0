// Durations as written in the config ("250ms", "10s", "5m") to and from std::chrono.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model.hpp"

namespace edgerelay::config {

/// Upper bound on every duration in a config (timeouts, grace, health-check intervals). Longer
/// values are almost always a unit mistake, and a bound keeps deadline arithmetic far from overflow.
inline constexpr duration max_config_duration{24LL * 60 * 60 * 1000};

/// "250ms", "10s", "5m": a whole non-negative number and one unit (ms, s or m), nothing else.
/// Returns nullopt for anything else, including a missing unit and values that overflow.
std::optional<duration> parse_duration(std::string_view text) noexcept;

/// The shortest exact spelling: 300000 ms -> "5m", 10000 ms -> "10s", 250 ms -> "250ms".
std::string format_duration(duration d);

}  // namespace edgerelay::config
