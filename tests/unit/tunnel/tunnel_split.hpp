// Local test helpers for tunnel/ codecs: byte vectors, hex, and every way to cut an input into chunks.
// (tests/unit/support/split_feed.hpp is tied to the SOCKS types, so the tunnel tests keep their own.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edgerelay::tunnel_test {

using bytes = std::vector<std::uint8_t>;
using chunk_list = std::vector<std::span<const std::uint8_t>>;

inline bytes b(std::string_view s) {
  return {s.begin(), s.end()};
}

inline bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

inline std::string hex(std::span<const std::uint8_t> in) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const auto c : in) {
    if (!out.empty()) {
      out.push_back(' ');
    }
    out.push_back(digits[c >> 4U]);
    out.push_back(digits[c & 0xFU]);
  }
  return out;
}

inline std::string text(std::span<const std::uint8_t> in) {
  return {in.begin(), in.end()};
}

/// The input whole, cut in two at every offset (0..size), and byte by byte.
inline std::vector<chunk_list> all_chunkings(std::span<const std::uint8_t> input) {
  std::vector<chunk_list> out;
  out.push_back({input});
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    out.push_back({input.first(cut), input.subspan(cut)});
  }
  chunk_list single;
  for (std::size_t i = 0; i < input.size(); ++i) {
    single.push_back(input.subspan(i, 1));
  }
  out.push_back(std::move(single));
  return out;
}

/// Human-readable name of a chunking for SCOPED_TRACE.
inline std::string describe(const chunk_list& chunks) {
  std::string out = "chunks:";
  for (const auto& c : chunks) {
    out += " " + std::to_string(c.size());
    if (out.size() > 200) {
      out += " ...";
      break;
    }
  }
  return out;
}

}  // namespace edgerelay::tunnel_test
