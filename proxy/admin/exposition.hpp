// The Prometheus text exposition format, version 0.0.4: sans-I/O, one family at a time.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "proxy/observe/metrics.hpp"

namespace edgerelay::proxy::admin {

/// The Content-Type a scrape answers with.
inline constexpr std::string_view exposition_content_type = "text/plain; version=0.0.4; charset=utf-8";

using label = std::pair<std::string_view, std::string_view>;
using labels = std::initializer_list<label>;

/// Appends `v` as a label value body: `\`, `"` and newline escaped as the format requires.
void append_label_value(std::string& out, std::string_view v);
/// A sample value: whole numbers without a fraction, +Inf/-Inf/NaN spelled as the format does.
std::string format_value(double v);

/// Builds one exposition. Every name gets `prefix`; families must be written whole, one after
/// another (the format forbids interleaving their samples).
class exposition {
 public:
  explicit exposition(std::string prefix = "edgerelay_") : prefix_(std::move(prefix)) {}

  /// `# HELP` and `# TYPE` lines; type is counter, gauge, histogram or untyped.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, labels ls, double value);
  void sample(std::string_view name, labels ls, std::uint64_t value);
  void sample(std::string_view name, labels ls, std::int64_t value);
  /// The _bucket series (with le, +Inf last), _sum and _count of `h` (its family written already).
  void histogram(std::string_view name, labels ls, const duration_histogram& h);

  const std::string& text() const noexcept { return out_; }
  std::string take() noexcept { return std::move(out_); }

 private:
  void series(std::string_view name, std::string_view suffix, labels ls, const label* extra);
  std::string prefix_;
  std::string out_;
};

}  // namespace edgerelay::proxy::admin
