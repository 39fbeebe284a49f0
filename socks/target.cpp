// Text forms of a SOCKS destination, for logs and policy messages.
#include "target.hpp"

#include <cstddef>
#include <cstdint>

#include "names/host_name.hpp"

namespace edgerelay::socks {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";
constexpr char upper_hex_digits[] = "0123456789ABCDEF";

void append_ipv4(std::string& out, const std::uint8_t* b) {
  for (int i = 0; i < 4; ++i) {
    if (i != 0) {
      out.push_back('.');
    }
    out += std::to_string(b[i]);
  }
}

void append_hex_group(std::string& out, unsigned value) {
  bool started = false;
  for (int shift = 12; shift >= 0; shift -= 4) {
    const unsigned nibble = (value >> static_cast<unsigned>(shift)) & 0xFU;
    if (nibble != 0 || started || shift == 0) {
      out.push_back(hex_digits[nibble]);
      started = true;
    }
  }
}

// Same output as glibc's inet_ntop: the longest (first on ties) run of two or more zero groups
// becomes "::", and ::a.b.c.d / ::ffff:a.b.c.d keep the dotted tail.
void append_ipv6(std::string& out, const ipv6_bytes& b) {
  unsigned words[8];
  for (std::size_t i = 0; i < 8; ++i) {
    words[i] = (static_cast<unsigned>(b[2 * i]) << 8U) | b[2 * i + 1];
  }
  int best_base = -1;
  int best_len = 0;
  for (int i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && words[j] == 0) {
      ++j;
    }
    if (j - i > best_len) {
      best_base = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) {
    best_base = -1;
  }
  for (int i = 0; i < 8; ++i) {
    if (best_base != -1 && i >= best_base && i < best_base + best_len) {
      if (i == best_base) {
        out.push_back(':');
      }
      continue;
    }
    if (i != 0) {
      out.push_back(':');
    }
    if (i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xFFFFU))) {
      append_ipv4(out, b.data() + 12);
      return;
    }
    append_hex_group(out, words[i]);
  }
  if (best_base != -1 && best_base + best_len == 8) {
    out.push_back(':');
  }
}

// Bytes that could break a log line or a JSON string become \xNN; '\\' too, so the escape is
// unambiguous.
void append_domain(std::string& out, const std::string& name) {
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F || c == '"' || c == '\\') {
      out += "\\x";
      out.push_back(upper_hex_digits[u >> 4U]);
      out.push_back(upper_hex_digits[u & 0xFU]);
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

std::optional<target_host> host_from_domain(std::string_view domain) {
  const names::classified_host c = names::classify_host(domain);
  switch (c.kind) {
    case names::host_kind::dns_name: return target_host{std::string(domain)};
    case names::host_kind::ipv4: return target_host{c.v4};
    case names::host_kind::ipv6: return target_host{c.v6};
    case names::host_kind::invalid: break;
  }
  return std::nullopt;
}

std::string host_string(const target_address& target) {
  std::string out;
  if (const auto* v4 = std::get_if<ipv4_bytes>(&target.host)) {
    append_ipv4(out, v4->data());
  } else if (const auto* v6 = std::get_if<ipv6_bytes>(&target.host)) {
    append_ipv6(out, *v6);
  } else {
    append_domain(out, std::get<std::string>(target.host));
  }
  return out;
}

std::string to_string(const target_address& target) {
  std::string out;
  if (std::holds_alternative<ipv6_bytes>(target.host)) {
    out.push_back('[');
    out += host_string(target);
    out.push_back(']');
  } else {
    out = host_string(target);
  }
  out.push_back(':');
  out += std::to_string(target.port);
  return out;
}

}  // namespace edgerelay::socks
