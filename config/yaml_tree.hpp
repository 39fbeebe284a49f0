// A compact, read-only YAML document tree built from yaml-cpp's parser events (no yaml-cpp types
// in this header). yaml-cpp's own node tree costs about 4 KB per rule of a large rule list; this one
// about 20 bytes per node, so a 100,000-rule file loads in tens of megabytes.
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgerelay::config {

class yaml_tree;

/// One node of a yaml_tree, or an undefined node (a key that is not in a map). Cheap to copy; valid
/// while its tree lives. Mirrors the part of YAML::Node the loader uses.
class yaml_node {
 public:
  yaml_node() = default;

  bool is_defined() const noexcept { return tree_ != nullptr; }
  explicit operator bool() const noexcept { return is_defined(); }
  bool is_null() const noexcept;
  bool is_scalar() const noexcept;
  bool is_sequence() const noexcept;
  bool is_map() const noexcept;
  /// The scalar's text; empty for anything else.
  std::string scalar() const;
  /// Items of a sequence, pairs of a map; 0 for anything else.
  std::size_t size() const noexcept;
  /// 1-based line and column of where the node starts; 0 for an undefined node.
  int line() const noexcept;
  int column() const noexcept;
  /// The value of the first pair whose key is the scalar `key`; undefined when none (or not a map).
  yaml_node operator[](std::string_view key) const noexcept;

  struct pair;
  /// Iterates a sequence's items (as yaml_node) or a map's pairs (as pair); nothing for others.
  class iterator;
  iterator begin() const noexcept;
  iterator end() const noexcept;

 private:
  friend class yaml_tree;
  yaml_node(const yaml_tree* tree, std::uint32_t index) : tree_(tree), index_(index) {}
  const yaml_tree* tree_ = nullptr;
  std::uint32_t index_ = 0;
};

struct yaml_node::pair {
  yaml_node first;
  yaml_node second;
};

class yaml_node::iterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = yaml_node;
  using difference_type = std::ptrdiff_t;
  using pointer = const pair*;
  using reference = const yaml_node&;
  iterator() = default;
  iterator(const yaml_tree* tree, const std::uint32_t* at, bool map) : tree_(tree), at_(at), map_(map) {}
  const yaml_node& operator*() const noexcept;
  const pair* operator->() const noexcept;
  iterator& operator++() noexcept {
    at_ += map_ ? 2 : 1;
    return *this;
  }
  friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.at_ == b.at_; }

 private:
  const yaml_tree* tree_ = nullptr;
  const std::uint32_t* at_ = nullptr;
  bool map_ = false;
  mutable pair current_;
};

class yaml_tree {
 public:
  /// Parses the first document of `text`; throws YAML::Exception (from yaml-cpp) on a syntax
  /// error. A text with no document gives a null root. `text` must outlive second_document().
  static std::unique_ptr<yaml_tree> parse(std::string_view text);

  yaml_tree();
  ~yaml_tree();
  yaml_tree(const yaml_tree&) = delete;
  yaml_tree& operator=(const yaml_tree&) = delete;

  yaml_node root() const noexcept { return yaml_node(this, 0); }

  /// Whether another document follows the first: parses it (once; throws YAML::Exception on a
  /// syntax error in it) and gives its 1-based start, {-1, -1} when yaml-cpp gave no position.
  std::optional<std::pair<int, int>> second_document();

  enum class kind : std::uint8_t { null, scalar, sequence, map };
  struct node {
    kind type = kind::null;
    std::uint32_t line = 0;  ///< 1-based
    std::uint32_t column = 0;
    std::uint32_t first = 0;  ///< scalar: offset into text_; sequence, map: offset into children_
    std::uint32_t count = 0;  ///< scalar: length; sequence: items; map: pairs (2 children each)
  };

 private:
  friend class yaml_node;
  friend class yaml_tree_builder;
  struct parser_state;
  std::unique_ptr<parser_state> parser_;  ///< until second_document()
  std::vector<node> nodes_;
  std::vector<std::uint32_t> children_;
  std::string text_;
};

}  // namespace edgerelay::config
