// Duration parsing and printing for config values.
#include "config/duration.hpp"

#include <charconv>
#include <cstdint>
#include <limits>

namespace edgerelay::config {

std::optional<duration> parse_duration(std::string_view text) noexcept {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    ++digits;
  }
  if (digits == 0 || digits > 12) {
    return std::nullopt;
  }
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + digits, value);
  const std::string_view unit = text.substr(digits);
  std::int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else {
    return std::nullopt;
  }
  // 12 digits times 60000 stays far below int64 max, so no overflow check is needed beyond that.
  return duration{value * scale};
}

std::string format_duration(duration d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 60'000 == 0) {
    return std::to_string(ms / 60'000) + "m";
  }
  if (ms != 0 && ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + "ms";
}

}  // namespace edgerelay::config
