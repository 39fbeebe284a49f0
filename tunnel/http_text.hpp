// Internal helpers for the HTTP codecs of tunnel/: ASCII case folding, token lists, byte vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgerelay::tunnel::detail {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// ASCII case-insensitive equality (field names, tokens, schemes are ASCII by grammar).
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

constexpr bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

constexpr std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_ows(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

/// Calls f(token) for every non-empty element of a comma-separated list (RFC 9110 section 5.6.1),
/// with optional whitespace trimmed.
template <class F>
void for_each_list_token(std::string_view list, F&& f) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty()) {
      f(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
}

/// True when the comma-separated `list` contains `token` (case-insensitive).
inline bool list_contains(std::string_view list, std::string_view token) {
  bool found = false;
  for_each_list_token(list, [&](std::string_view item) { found = found || iequals(item, token); });
  return found;
}

/// True when a Connection (or Proxy-Connection) value names a field that frames or routes the
/// message. A hop drops the fields its Connection names, so the next hop would frame the body
/// differently from this one and read it as another request (smuggling).
inline bool names_framing_field(std::string_view connection_tokens) {
  return list_contains(connection_tokens, "Content-Length") || list_contains(connection_tokens, "Transfer-Encoding") ||
         list_contains(connection_tokens, "Host");
}

/// Incremental search for the CRLFCRLF that ends an HTTP head (Beast's own end-of-head rule).
/// `scan` keeps the resume offset between calls. Returns the index just past it, or npos.
inline std::size_t find_head_end(const std::vector<std::uint8_t>& buf, std::size_t& scan) {
  for (std::size_t i = scan; i + 4 <= buf.size(); ++i) {
    if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
      return i + 4;
    }
  }
  scan = buf.size() >= 3 ? buf.size() - 3 : 0;
  return std::string_view::npos;
}

inline void append(std::vector<std::uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}

inline std::vector<std::uint8_t> to_bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

}  // namespace edgerelay::tunnel::detail
