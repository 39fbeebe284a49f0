// name_table and prefix_table: built once by sorting, then binary searched without allocating.
#include "config/lookup_tables.hpp"

#include <algorithm>
#include <cstring>
#include <tuple>

namespace edgerelay::config {

namespace {

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// Three-way compare of a stored key with a query, the query lowered on the fly when folding.
int compare(std::string_view stored, std::string_view query, bool fold_case) noexcept {
  const std::size_t n = std::min(stored.size(), query.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto a = static_cast<unsigned char>(stored[i]);
    const auto b = static_cast<unsigned char>(fold_case ? lower(query[i]) : query[i]);
    if (a != b) {
      return a < b ? -1 : 1;
    }
  }
  return stored.size() == query.size() ? 0 : stored.size() < query.size() ? -1 : 1;
}

}  // namespace

void name_table::add(std::string_view key, std::uint32_t rule) {
  std::string k(key);
  if (fold_case_) {
    std::transform(k.begin(), k.end(), k.begin(), lower);
  }
  pending_.emplace_back(std::move(k), rule);
}

void name_table::seal() {
  std::sort(pending_.begin(), pending_.end());
  pending_.erase(std::unique(pending_.begin(), pending_.end()), pending_.end());
  entries_.clear();
  rules_.clear();
  keys_.clear();
  rules_.reserve(pending_.size());
  for (std::size_t i = 0; i < pending_.size();) {
    entry e;
    e.key_offset = static_cast<std::uint32_t>(keys_.size());
    e.key_size = static_cast<std::uint32_t>(pending_[i].first.size());
    e.first = static_cast<std::uint32_t>(rules_.size());
    keys_ += pending_[i].first;
    std::size_t j = i;
    for (; j < pending_.size() && pending_[j].first == pending_[i].first; ++j) {
      rules_.push_back(pending_[j].second);
    }
    e.count = static_cast<std::uint32_t>(j - i);
    entries_.push_back(e);
    i = j;
  }
  pending_.clear();
  pending_.shrink_to_fit();
  keys_.shrink_to_fit();
  entries_.shrink_to_fit();
}

rule_list name_table::find(std::string_view key) const noexcept {
  std::size_t lo = 0;
  std::size_t hi = entries_.size();
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    const int c = compare(key_of(entries_[mid]), key, fold_case_);
    if (c == 0) {
      return rule_list(rules_.data() + entries_[mid].first, entries_[mid].count);
    }
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return {};
}

prefix_table::key prefix_table::masked(const ip_address& a, std::uint8_t prefix) noexcept {
  key out{};
  const std::size_t full = prefix / 8U;
  std::memcpy(out.data(), a.bytes.data(), full);
  if (const unsigned rest = prefix % 8U; rest != 0) {
    out[full] = static_cast<std::uint8_t>(a.bytes[full] & ((0xffU << (8U - rest)) & 0xffU));
  }
  return out;
}

void prefix_table::add(const cidr& net, std::uint32_t rule) {
  pending_.push_back(pending{net.base.v6, net.prefix, masked(net.base, net.prefix), rule});
}

void prefix_table::seal() {
  auto order = [](const pending& p) { return std::tie(p.v6, p.prefix, p.base, p.rule); };
  std::sort(pending_.begin(), pending_.end(), [&](const pending& a, const pending& b) { return order(a) < order(b); });
  pending_.erase(std::unique(pending_.begin(), pending_.end(),
                             [&](const pending& a, const pending& b) { return order(a) == order(b); }),
                 pending_.end());
  levels_.clear();
  entries_.clear();
  rules_.clear();
  rules_.reserve(pending_.size());
  for (std::size_t i = 0; i < pending_.size();) {
    const pending& head = pending_[i];
    if (levels_.empty() || levels_.back().v6 != head.v6 || levels_.back().prefix != head.prefix) {
      levels_.push_back(level{head.v6, head.prefix, static_cast<std::uint32_t>(entries_.size()), 0});
    }
    entry e;
    e.base = head.base;
    e.first = static_cast<std::uint32_t>(rules_.size());
    std::size_t j = i;
    for (; j < pending_.size() && pending_[j].v6 == head.v6 && pending_[j].prefix == head.prefix &&
           pending_[j].base == head.base;
         ++j) {
      rules_.push_back(pending_[j].rule);
    }
    e.count = static_cast<std::uint32_t>(j - i);
    entries_.push_back(e);
    ++levels_.back().count;
    i = j;
  }
  pending_.clear();
  pending_.shrink_to_fit();
  entries_.shrink_to_fit();
}

rule_list prefix_table::find(const level& l, const key& k) const noexcept {
  const auto begin = entries_.begin() + l.first;
  const auto end = begin + l.count;
  const auto it = std::lower_bound(begin, end, k, [](const entry& e, const key& x) { return e.base < x; });
  if (it == end || it->base != k) {
    return {};
  }
  return rule_list(rules_.data() + it->first, it->count);
}

}  // namespace edgerelay::config
