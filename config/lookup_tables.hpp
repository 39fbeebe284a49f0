// Sorted lookup tables from names and networks to rule numbers, for the policy index and the shadow check.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "address.hpp"
#include "model.hpp"

namespace edgerelay::config {

/// Rule numbers (0-based), ascending, without repeats.
using rule_list = std::span<const std::uint32_t>;

/// Names to rule lists. Filled with add(), then seal()ed once; find() never allocates.
/// With `fold_case`, keys are stored in lower case and found case-insensitively (ASCII).
class name_table {
 public:
  explicit name_table(bool fold_case) : fold_case_(fold_case) {}

  void add(std::string_view key, std::uint32_t rule);
  void seal();

  /// The rules filed under `key`; empty when none.
  rule_list find(std::string_view key) const noexcept;

 private:
  struct entry {
    std::uint32_t key_offset = 0;
    std::uint32_t key_size = 0;
    std::uint32_t first = 0;  ///< into rules_
    std::uint32_t count = 0;
  };
  std::string_view key_of(const entry& e) const noexcept { return {keys_.data() + e.key_offset, e.key_size}; }

  bool fold_case_;
  std::vector<std::pair<std::string, std::uint32_t>> pending_;  ///< until seal()
  std::string keys_;
  std::vector<entry> entries_;  ///< sorted by key
  std::vector<std::uint32_t> rules_;
};

/// Networks (IPv4 and IPv6) to rule lists: one sorted level per family and prefix length, so a
/// lookup is one binary search per prefix length in use. Filled with add(), then seal()ed once.
class prefix_table {
 public:
  void add(const cidr& net, std::uint32_t rule);
  void seal();

  /// Calls `f(rule_list)` for each stored network of at most `max_prefix` bits that contains
  /// `address` (which must be folded). Shorter prefixes first. Never allocates.
  template <class F>
  void for_each_containing(const ip_address& address, std::uint8_t max_prefix, F&& f) const {
    for (const level& l : levels_) {
      if (l.v6 != address.v6 || l.prefix > max_prefix) {
        continue;
      }
      const rule_list found = find(l, masked(address, l.prefix));
      if (!found.empty()) {
        f(found);
      }
    }
  }

  bool empty() const noexcept { return levels_.empty(); }

 private:
  using key = std::array<std::uint8_t, 16>;
  struct entry {
    key base{};
    std::uint32_t first = 0;  ///< into rules_
    std::uint32_t count = 0;
  };
  struct level {
    bool v6 = false;
    std::uint8_t prefix = 0;
    std::uint32_t first = 0;  ///< into entries_, sorted by base
    std::uint32_t count = 0;
  };
  static key masked(const ip_address& a, std::uint8_t prefix) noexcept;
  rule_list find(const level& l, const key& k) const noexcept;

  struct pending {
    bool v6;
    std::uint8_t prefix;
    key base;
    std::uint32_t rule;
  };
  std::vector<pending> pending_;  ///< until seal()
  std::vector<level> levels_;
  std::vector<entry> entries_;
  std::vector<std::uint32_t> rules_;
};

}  // namespace edgerelay::config
