// yaml_tree: yaml-cpp's parser events (the same parser YAML::Load runs) into flat arrays.
#include "config/yaml_tree.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <istream>
#include <streambuf>

namespace edgerelay::config {

namespace {

std::uint32_t narrow(std::size_t n) {
  if (n > 0xffffffffU) {
    throw std::length_error("YAML document too large");
  }
  return static_cast<std::uint32_t>(n);
}

}  // namespace

/// Builds the tree as events arrive. Nodes are numbered in document order; a collection's
/// children are collected on a stack and copied out when it ends, so they lie side by side.
/// An alias is the node its anchor named, as in YAML::Load.
class yaml_tree_builder : public YAML::EventHandler {
 public:
  explicit yaml_tree_builder(yaml_tree& tree) : tree_(tree) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    attach(add(yaml_tree::kind::null, mark), anchor);
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override {
    // The parser refuses an alias to an unknown anchor, so the anchor is always there.
    attach(anchor < anchors_.size() ? anchors_[anchor] : add(yaml_tree::kind::null, YAML::Mark()), 0);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    const std::uint32_t index = add(yaml_tree::kind::scalar, mark);
    yaml_tree::node& n = tree_.nodes_[index];
    n.first = narrow(tree_.text_.size());
    n.count = narrow(value.size());
    tree_.text_ += value;
    attach(index, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(yaml_tree::kind::sequence, mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(yaml_tree::kind::map, mark, anchor);
  }
  void OnMapEnd() override { close(); }

  bool empty() const noexcept { return tree_.nodes_.empty(); }

 private:
  std::uint32_t add(yaml_tree::kind k, const YAML::Mark& mark) {
    yaml_tree::node n;
    n.type = k;
    n.line = mark.line >= 0 ? narrow(static_cast<std::size_t>(mark.line) + 1) : 0;
    n.column = mark.column >= 0 ? narrow(static_cast<std::size_t>(mark.column) + 1) : 0;
    tree_.nodes_.push_back(n);
    return narrow(tree_.nodes_.size() - 1);
  }

  void remember(std::uint32_t index, YAML::anchor_t anchor) {
    if (anchor == 0) {
      return;
    }
    if (anchors_.size() <= anchor) {
      anchors_.resize(anchor + 1, 0);
    }
    anchors_[anchor] = index;
  }

  /// A finished node becomes the next child of the open collection (the root when none is open).
  void attach(std::uint32_t index, YAML::anchor_t anchor) {
    remember(index, anchor);
    if (!open_.empty()) {
      pending_.push_back(index);
    }
  }

  void open(yaml_tree::kind k, const YAML::Mark& mark, YAML::anchor_t anchor) {
    const std::uint32_t index = add(k, mark);
    // Known before its children, so an alias inside it can name it (as with YAML::Load).
    remember(index, anchor);
    open_.push_back({index, pending_.size()});
  }

  void close() {
    const frame f = open_.back();
    open_.pop_back();
    yaml_tree::node& n = tree_.nodes_[f.index];
    const std::size_t children = pending_.size() - f.pending_start;
    n.first = narrow(tree_.children_.size());
    // A map's last key may have no value event only in a broken document; the parser throws first.
    n.count = narrow(n.type == yaml_tree::kind::map ? children / 2 : children);
    tree_.children_.insert(tree_.children_.end(), pending_.begin() + static_cast<std::ptrdiff_t>(f.pending_start),
                           pending_.end());
    pending_.resize(f.pending_start);
    if (!open_.empty()) {
      pending_.push_back(f.index);
    }
  }

  struct frame {
    std::uint32_t index;
    std::size_t pending_start;
  };
  yaml_tree& tree_;
  std::vector<frame> open_;
  std::vector<std::uint32_t> pending_;
  std::vector<std::uint32_t> anchors_;
};

namespace {

/// Notes where the next document starts, and nothing else.
class document_start : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (!seen_) {
      seen_ = true;
      mark_ = mark;
    }
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  const YAML::Mark& mark() const noexcept { return mark_; }

 private:
  bool seen_ = false;
  YAML::Mark mark_ = YAML::Mark::null_mark();
};

}  // namespace

namespace {

/// Reads the caller's text in place: a config of megabytes is not copied into a stream.
class view_buffer : public std::streambuf {
 public:
  explicit view_buffer(std::string_view text) {
    char* begin = const_cast<char*>(text.data());  // NOLINT: a get area is never written through
    setg(begin, begin, begin + text.size());
  }
};

}  // namespace

struct yaml_tree::parser_state {
  view_buffer buffer;
  std::istream in;
  YAML::Parser parser;
  explicit parser_state(std::string_view text) : buffer(text), in(&buffer), parser(in) {}
};

yaml_tree::yaml_tree() = default;
yaml_tree::~yaml_tree() = default;

std::unique_ptr<yaml_tree> yaml_tree::parse(std::string_view text) {
  auto tree = std::make_unique<yaml_tree>();
  tree->parser_ = std::make_unique<parser_state>(text);
  yaml_tree_builder builder(*tree);
  tree->parser_->parser.HandleNextDocument(builder);
  if (builder.empty()) {
    tree->nodes_.push_back(node{});  // no document: a null root, as YAML::Load gives
  }
  return tree;
}

std::optional<std::pair<int, int>> yaml_tree::second_document() {
  if (!parser_) {
    return std::nullopt;
  }
  // The parser goes on from where the first document ended. yaml-cpp 0.7's LoadAll never returns
  // on some malformed input (a NUL byte after a flow collection, found by the config fuzzer), so
  // it is asked for one more document only.
  const std::unique_ptr<parser_state> state = std::move(parser_);
  document_start next;
  if (!state->parser.HandleNextDocument(next)) {
    return std::nullopt;
  }
  const YAML::Mark& m = next.mark();
  return m.is_null() ? std::pair(-1, -1) : std::pair(m.line + 1, m.column + 1);
}

bool yaml_node::is_null() const noexcept {
  return tree_ != nullptr && tree_->nodes_[index_].type == yaml_tree::kind::null;
}
bool yaml_node::is_scalar() const noexcept {
  return tree_ != nullptr && tree_->nodes_[index_].type == yaml_tree::kind::scalar;
}
bool yaml_node::is_sequence() const noexcept {
  return tree_ != nullptr && tree_->nodes_[index_].type == yaml_tree::kind::sequence;
}
bool yaml_node::is_map() const noexcept {
  return tree_ != nullptr && tree_->nodes_[index_].type == yaml_tree::kind::map;
}

std::string yaml_node::scalar() const {
  if (!is_scalar()) {
    return {};
  }
  const yaml_tree::node& n = tree_->nodes_[index_];
  return tree_->text_.substr(n.first, n.count);
}

std::size_t yaml_node::size() const noexcept {
  return is_sequence() || is_map() ? tree_->nodes_[index_].count : 0;
}

int yaml_node::line() const noexcept {
  return tree_ != nullptr ? static_cast<int>(tree_->nodes_[index_].line) : 0;
}
int yaml_node::column() const noexcept {
  return tree_ != nullptr ? static_cast<int>(tree_->nodes_[index_].column) : 0;
}

yaml_node yaml_node::operator[](std::string_view key) const noexcept {
  if (!is_map()) {
    return {};
  }
  const yaml_tree::node& n = tree_->nodes_[index_];
  for (std::uint32_t i = 0; i < n.count; ++i) {
    const yaml_tree::node& k = tree_->nodes_[tree_->children_[n.first + 2 * i]];
    if (k.type == yaml_tree::kind::scalar && std::string_view(tree_->text_).substr(k.first, k.count) == key) {
      return yaml_node(tree_, tree_->children_[n.first + 2 * i + 1]);
    }
  }
  return {};
}

yaml_node::iterator yaml_node::begin() const noexcept {
  if (!is_sequence() && !is_map()) {
    return {};
  }
  const yaml_tree::node& n = tree_->nodes_[index_];
  return iterator(tree_, tree_->children_.data() + n.first, is_map());
}

yaml_node::iterator yaml_node::end() const noexcept {
  if (!is_sequence() && !is_map()) {
    return {};
  }
  const yaml_tree::node& n = tree_->nodes_[index_];
  return iterator(tree_, tree_->children_.data() + n.first + (is_map() ? 2 * n.count : n.count), is_map());
}

const yaml_node& yaml_node::iterator::operator*() const noexcept {
  current_.first = yaml_node(tree_, at_[0]);
  return current_.first;
}

const yaml_node::pair* yaml_node::iterator::operator->() const noexcept {
  current_.first = yaml_node(tree_, at_[0]);
  current_.second = map_ ? yaml_node(tree_, at_[1]) : yaml_node();
  return &current_;
}

}  // namespace edgerelay::config
