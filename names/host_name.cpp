// Host classification: RFC 1123 names, inet_aton's numeric IPv4 forms and inet_pton's IPv6 text, reimplemented to be pure.
#include "names/host_name.hpp"

#include <algorithm>

namespace edgerelay::names {
namespace {

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

bool is_letter(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int hex_value(char c) noexcept {
  if (is_digit(c)) {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool is_hex_prefix(std::string_view s, std::size_t at) noexcept {
  return at + 1 < s.size() && s[at] == '0' && (s[at + 1] == 'x' || s[at + 1] == 'X');
}

classified_host invalid(std::string_view why) noexcept {
  classified_host out;
  out.why = why;
  return out;
}

// Why a byte outside the name alphabet is refused, worded for an operator reading a log.
std::string_view why_byte(unsigned char u) noexcept {
  if (u == 0) {
    return "NUL byte";
  }
  if (u < 0x20 || u == 0x7F) {
    return "control byte";
  }
  if (u >= 0x80) {
    return "non-ASCII byte";
  }
  if (u == ' ') {
    return "space";
  }
  return "character not allowed in a host name";
}

// WHATWG URL's "ends in a number" test, with inet_aton's number syntax: the cue that a resolver
// may read the string as an address rather than look it up.
bool ends_in_number(std::string_view host) noexcept {
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  const std::size_t dot = host.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) {
    return false;
  }
  if (std::all_of(last.begin(), last.end(), is_digit)) {
    return true;
  }
  return is_hex_prefix(last, 0) && std::all_of(last.begin() + 2, last.end(), [](char c) { return hex_value(c) >= 0; });
}

classified_host check_labels(std::string_view host) noexcept {
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  if (host.empty()) {
    return invalid("empty name");
  }
  if (host.size() > max_name_length) {
    return invalid("name longer than 253");
  }
  std::size_t label = 0;
  for (const char c : host) {
    if (c == '.') {
      if (label == 0) {
        return invalid("empty label");
      }
      label = 0;
    } else if (++label > max_label_length) {
      return invalid("label longer than 63");
    }
  }
  if (label == 0) {
    return invalid("empty label");  // a second trailing dot
  }
  classified_host out;
  out.kind = host_kind::dns_name;
  return out;
}

// glibc inet_pton4: exactly four decimal parts 0-255, no leading zeros; used for IPv6's tail.
bool parse_strict_dotted_quad(std::string_view s, std::uint8_t* out) noexcept {
  std::size_t octets = 0;
  unsigned value = 0;
  bool saw_digit = false;
  for (const char c : s) {
    if (is_digit(c)) {
      if (saw_digit && value == 0) {
        return false;
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
      if (value > 255) {
        return false;
      }
      if (!saw_digit) {
        if (++octets > 4) {
          return false;
        }
        saw_digit = true;
      }
      out[octets - 1] = static_cast<std::uint8_t>(value);
    } else if (c == '.' && saw_digit) {
      if (octets == 4) {
        return false;
      }
      value = 0;
      saw_digit = false;
    } else {
      return false;
    }
  }
  return octets == 4 && saw_digit;
}

}  // namespace

std::optional<ipv4_bytes> parse_ipv4_numeric(std::string_view text) noexcept {
  // Largest value the last part may take, by how many parts came before it.
  static constexpr std::uint32_t last_max[4] = {0xFFFFFFFFU, 0xFFFFFFU, 0xFFFFU, 0xFFU};
  ipv4_bytes out{};
  std::size_t stored = 0;
  std::size_t at = 0;
  for (;;) {
    if (at >= text.size() || !is_digit(text[at])) {
      return std::nullopt;
    }
    unsigned base = 10;
    if (is_hex_prefix(text, at)) {
      base = 16;
      at += 2;
      // strtoul reads "0x" without a hex digit as "0" followed by junk 'x'; inet_aton refuses it.
      if (at >= text.size() || hex_value(text[at]) < 0) {
        return std::nullopt;
      }
    } else if (text[at] == '0') {
      base = 8;
    }
    // Wider than 32 bits, so a value past 0xFFFFFFFF is seen, and capped so it cannot wrap.
    std::uint64_t value = 0;
    for (; at < text.size(); ++at) {
      const int digit = hex_value(text[at]);
      if (digit < 0 || static_cast<unsigned>(digit) >= base) {
        break;
      }
      value = std::min<std::uint64_t>(value * base + static_cast<unsigned>(digit), 0x100000000ULL);
    }
    if (value > 0xFFFFFFFFULL) {
      return std::nullopt;
    }
    if (at == text.size()) {
      if (value > last_max[stored]) {
        return std::nullopt;
      }
      for (std::size_t i = out.size(); i-- > stored;) {
        out[i] = static_cast<std::uint8_t>(value & 0xFFU);
        value >>= 8U;
      }
      return out;
    }
    if (text[at] != '.' || stored == 3 || value > 0xFF) {
      return std::nullopt;
    }
    out[stored++] = static_cast<std::uint8_t>(value);
    ++at;
  }
}

std::optional<ipv6_bytes> parse_ipv6_literal(std::string_view text) noexcept {
  // A transcription of glibc's inet_pton6, so both agree on every corner ("1::", ":1", "::1.2.3.4").
  ipv6_bytes out{};
  std::size_t tp = 0;
  std::optional<std::size_t> colonp;
  std::size_t at = 0;
  if (text.empty()) {
    return std::nullopt;
  }
  if (text[0] == ':') {
    ++at;
    if (at == text.size() || text[at] != ':') {
      return std::nullopt;
    }
  }
  std::size_t curtok = at;
  std::size_t xdigits = 0;
  unsigned value = 0;
  while (at < text.size()) {
    const char c = text[at++];
    if (const int digit = hex_value(c); digit >= 0) {
      if (xdigits == 4) {
        return std::nullopt;
      }
      value = (value << 4U) | static_cast<unsigned>(digit);
      ++xdigits;
      continue;
    }
    if (c == ':') {
      curtok = at;
      if (xdigits == 0) {
        if (colonp) {
          return std::nullopt;
        }
        colonp = tp;
        continue;
      }
      if (at == text.size() || tp + 2 > out.size()) {
        return std::nullopt;
      }
      out[tp++] = static_cast<std::uint8_t>(value >> 8U);
      out[tp++] = static_cast<std::uint8_t>(value & 0xFFU);
      xdigits = 0;
      value = 0;
      continue;
    }
    if (c == '.' && tp + 4 <= out.size() && parse_strict_dotted_quad(text.substr(curtok), out.data() + tp)) {
      tp += 4;
      xdigits = 0;
      at = text.size();
      break;
    }
    return std::nullopt;
  }
  if (xdigits > 0) {
    if (tp + 2 > out.size()) {
      return std::nullopt;
    }
    out[tp++] = static_cast<std::uint8_t>(value >> 8U);
    out[tp++] = static_cast<std::uint8_t>(value & 0xFFU);
  }
  if (colonp) {
    if (tp == out.size()) {
      return std::nullopt;  // "::" must stand for at least one zero group
    }
    const std::size_t tail = tp - *colonp;
    std::copy_backward(out.begin() + static_cast<std::ptrdiff_t>(*colonp),
                       out.begin() + static_cast<std::ptrdiff_t>(tp), out.end());
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(*colonp), out.end() - static_cast<std::ptrdiff_t>(tail),
              std::uint8_t{0});
    tp = out.size();
  }
  if (tp != out.size()) {
    return std::nullopt;
  }
  return out;
}

classified_host classify_host(std::string_view host) noexcept {
  if (host.empty()) {
    return invalid("empty host");
  }
  if (host.front() == '[' || host.find(':') != std::string_view::npos) {
    std::string_view inside = host;
    if (host.front() == '[') {
      if (host.size() < 2 || host.back() != ']') {
        return invalid("unclosed bracket");
      }
      inside = host.substr(1, host.size() - 2);
    }
    const auto v6 = parse_ipv6_literal(inside);
    if (!v6) {
      return invalid("bad IPv6 literal");
    }
    classified_host out;
    out.kind = host_kind::ipv6;
    out.v6 = *v6;
    return out;
  }
  for (const char c : host) {
    if (!is_letter(c) && !is_digit(c) && c != '-' && c != '_' && c != '.') {
      return invalid(why_byte(static_cast<unsigned char>(c)));
    }
  }
  if (ends_in_number(host)) {
    const auto v4 = parse_ipv4_numeric(host);
    if (!v4) {
      return invalid("numeric host is not an IPv4 address");
    }
    classified_host out;
    out.kind = host_kind::ipv4;
    out.v4 = *v4;
    return out;
  }
  return check_labels(host);
}

std::string to_dotted_quad(const ipv4_bytes& address) {
  std::string out;
  out.reserve(15);
  for (std::size_t i = 0; i < address.size(); ++i) {
    if (i != 0) {
      out.push_back('.');
    }
    out += std::to_string(address[i]);
  }
  return out;
}

}  // namespace edgerelay::names
