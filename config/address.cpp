// IP, CIDR, port, endpoint and host-pattern parsing for config and policy; pure and allocation-free where it matters.
#include "config/address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace edgerelay::config {
namespace {

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

std::string_view strip_trailing_dot(std::string_view s) noexcept {
  if (!s.empty() && s.back() == '.') {
    s.remove_suffix(1);
  }
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool is_v4_mapped(const ip_address& a) noexcept {
  return a.v6 && std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), a.bytes.begin());
}

/// inet_pton without folding; the text must be NUL-terminated, so copy into a stack buffer.
std::optional<ip_address> parse_raw(std::string_view text) noexcept {
  char buf[64];
  if (text.empty() || text.size() >= sizeof buf) {
    return std::nullopt;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_address out;
  if (text.find(':') != std::string_view::npos) {
    out.v6 = true;
    if (inet_pton(AF_INET6, buf, out.bytes.data()) != 1) {
      return std::nullopt;
    }
  } else if (inet_pton(AF_INET, buf, out.bytes.data()) != 1) {
    return std::nullopt;
  }
  return out;
}

int address_bits(const ip_address& a) noexcept {
  return a.v6 ? 128 : 32;
}

ip_address mask(const ip_address& a, int prefix) noexcept {
  ip_address out = a;
  const int total = address_bits(a) / 8;
  for (int i = 0; i < total; ++i) {
    const int bits_here = std::clamp(prefix - i * 8, 0, 8);
    const auto keep = static_cast<std::uint8_t>(bits_here == 0 ? 0 : (0xff << (8 - bits_here)) & 0xff);
    out.bytes[static_cast<std::size_t>(i)] &= keep;
  }
  for (std::size_t i = static_cast<std::size_t>(total); i < out.bytes.size(); ++i) {
    out.bytes[i] = 0;
  }
  return out;
}

void set_why(std::string* why, std::string text) {
  if (why != nullptr) {
    *why = std::move(text);
  }
}

bool is_config_name(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' || c == '_' || c == '.';
  });
}

}  // namespace

ip_address fold_v4_mapped(const ip_address& address) noexcept {
  if (!is_v4_mapped(address)) {
    return address;
  }
  ip_address out;
  std::copy(address.bytes.begin() + 12, address.bytes.end(), out.bytes.begin());
  return out;
}

bool is_unspecified_range(const ip_address& address) noexcept {
  if (address.v6 && !is_v4_mapped(address)) {
    return std::all_of(address.bytes.begin(), address.bytes.end(), [](std::uint8_t b) { return b == 0; });
  }
  return fold_v4_mapped(address).bytes[0] == 0;
}

bool is_multicast(const ip_address& address) noexcept {
  if (address.v6 && !is_v4_mapped(address)) {
    return address.bytes[0] == 0xff;
  }
  return (fold_v4_mapped(address).bytes[0] & 0xf0) == 0xe0;
}

bool is_limited_broadcast(const ip_address& address) noexcept {
  if (address.v6 && !is_v4_mapped(address)) {
    return false;
  }
  const ip_address v4 = fold_v4_mapped(address);
  return std::all_of(v4.bytes.begin(), v4.bytes.begin() + 4, [](std::uint8_t b) { return b == 0xff; });
}

std::optional<ip_address> parse_ip_address(std::string_view text) noexcept {
  auto raw = parse_raw(text);
  if (!raw) {
    return std::nullopt;
  }
  return fold_v4_mapped(*raw);
}

std::optional<ip_address> parse_ip_literal(std::string_view text) noexcept {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    auto a = parse_raw(text.substr(1, text.size() - 2));
    if (!a || !a->v6) {
      return std::nullopt;
    }
    return fold_v4_mapped(*a);
  }
  return parse_ip_address(text);
}

std::string to_string(const ip_address& address) {
  if (!address.v6) {
    std::string out;
    for (std::size_t i = 0; i < 4; ++i) {
      if (i != 0) {
        out += '.';
      }
      out += std::to_string(address.bytes[i]);
    }
    return out;
  }
  std::array<unsigned, 8> groups{};
  for (std::size_t i = 0; i < 8; ++i) {
    groups[i] = (static_cast<unsigned>(address.bytes[2 * i]) << 8) | address.bytes[2 * i + 1];
  }
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the first one on a tie.
  int best_start = -1;
  int best_len = 0;
  for (int i = 0; i < 8;) {
    if (groups[static_cast<std::size_t>(i)] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[static_cast<std::size_t>(j)] == 0) {
      ++j;
    }
    if (j - i > best_len && j - i >= 2) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  char hex[8];
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') {
      out += ':';
    }
    auto [end, ec] = std::to_chars(hex, hex + sizeof hex, groups[static_cast<std::size_t>(i)], 16);
    (void)ec;
    out.append(hex, end);
  }
  return out;
}

std::optional<cidr> parse_cidr(std::string_view text, std::string* why) {
  const auto slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  auto raw = parse_raw(addr_text);
  if (!raw) {
    set_why(why, "'" + std::string(addr_text) + "' is not an IP address");
    return std::nullopt;
  }
  int prefix = address_bits(*raw);
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    int value = -1;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || value < 0 || value > address_bits(*raw) ||
        p.size() > 3) {
      set_why(why,
              "prefix length must be 0-" + std::to_string(address_bits(*raw)) + " for " + (raw->v6 ? "IPv6" : "IPv4"));
      return std::nullopt;
    }
    prefix = value;
  }
  const ip_address masked = mask(*raw, prefix);
  if (masked != *raw) {
    set_why(why, "host bits are set (did you mean " + to_string(masked) + "/" + std::to_string(prefix) + "?)");
    return std::nullopt;
  }
  // ::ffff:10.0.0.0/104 is the IPv4 network 10.0.0.0/8: addresses are folded, so networks are too.
  if (is_v4_mapped(*raw) && prefix >= 96) {
    return cidr{fold_v4_mapped(*raw), static_cast<std::uint8_t>(prefix - 96)};
  }
  return cidr{*raw, static_cast<std::uint8_t>(prefix)};
}

bool contains(const cidr& net, const ip_address& address) noexcept {
  const ip_address a = fold_v4_mapped(address);
  if (a.v6 != net.base.v6) {
    return false;
  }
  const int full = net.prefix / 8;
  for (int i = 0; i < full; ++i) {
    if (a.bytes[static_cast<std::size_t>(i)] != net.base.bytes[static_cast<std::size_t>(i)]) {
      return false;
    }
  }
  const int rest = net.prefix % 8;
  if (rest != 0) {
    const auto m = static_cast<std::uint8_t>((0xff << (8 - rest)) & 0xff);
    return (a.bytes[static_cast<std::size_t>(full)] & m) == net.base.bytes[static_cast<std::size_t>(full)];
  }
  return true;
}

bool contains(const cidr& outer, const cidr& inner) noexcept {
  return outer.base.v6 == inner.base.v6 && outer.prefix <= inner.prefix && contains(outer, inner.base);
}

std::string to_string(const cidr& net) {
  return to_string(net.base) + "/" + std::to_string(net.prefix);
}

std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), is_digit)) {
    return std::nullopt;
  }
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

std::optional<port_range> parse_port_range(std::string_view text, std::string* why) {
  const auto dash = text.find('-');
  const auto first = parse_port(text.substr(0, dash));
  const auto last = dash == std::string_view::npos ? first : parse_port(text.substr(dash + 1));
  if (!first || !last) {
    set_why(why, "port '" + std::string(text) + "' must be a number 0-65535 or a range like 5000-5010");
    return std::nullopt;
  }
  if (*first > *last) {
    set_why(why, "port range '" + std::string(text) + "' ends before it starts");
    return std::nullopt;
  }
  return port_range{*first, *last};
}

namespace {

/// Split "host:port" / "[v6]:port"; `bracketed` tells whether the host was in brackets.
bool split_host_port(std::string_view text, std::string_view& host, std::string_view& port, bool& bracketed,
                     std::string* why) {
  bracketed = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      set_why(why, "missing ']' after the IPv6 address");
      return false;
    }
    host = text.substr(1, close - 1);
    bracketed = true;
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      set_why(why, "expected ':port' after ']'");
      return false;
    }
    port = rest.substr(1);
    return true;
  }
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    set_why(why, "missing ':port'");
    return false;
  }
  if (text.find(':', colon + 1) != std::string_view::npos) {
    set_why(why, "an IPv6 address needs brackets before a port, as in [::1]:1080");
    return false;
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  return true;
}

}  // namespace

std::optional<endpoint_spec> parse_endpoint(std::string_view text, std::string* why) {
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  if (!split_host_port(text, host, port_text, bracketed, why)) {
    return std::nullopt;
  }
  const auto address = parse_raw(host);
  if (!address || (bracketed && !address->v6)) {
    set_why(why, "'" + std::string(host) + "' is not an IP address");
    return std::nullopt;
  }
  const auto port = parse_port(port_text);
  if (!port) {
    set_why(why, "port '" + std::string(port_text) + "' must be a number 0-65535");
    return std::nullopt;
  }
  return endpoint_spec{std::string(host), *port};
}

std::optional<host_port> parse_host_port(std::string_view text, std::string* why) {
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  if (!split_host_port(text, host, port_text, bracketed, why)) {
    return std::nullopt;
  }
  const auto address = parse_raw(host);
  if (bracketed ? (!address || !address->v6) : (!address && !is_valid_host_name(host))) {
    set_why(why, "'" + std::string(host) + "' is neither an IP address nor a host name");
    return std::nullopt;
  }
  const auto port = parse_port(port_text);
  if (!port) {
    set_why(why, "port '" + std::string(port_text) + "' must be a number 0-65535");
    return std::nullopt;
  }
  return host_port{std::string(host), *port};
}

std::string normalize_host(std::string_view host) {
  host = strip_trailing_dot(host);
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool is_valid_host_name(std::string_view host) noexcept {
  host = strip_trailing_dot(host);
  if (host.empty() || host.size() > 253) {
    return false;
  }
  std::size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
      continue;
    }
    const char l = lower(c);
    if (!(is_digit(c) || (l >= 'a' && l <= 'z') || c == '-' || c == '_') || ++label > 63) {
      return false;
    }
  }
  return label != 0;
}

bool host_equals(std::string_view a, std::string_view b) noexcept {
  return iequals(strip_trailing_dot(a), strip_trailing_dot(b));
}

bool host_is_subdomain_of(std::string_view host, std::string_view suffix) noexcept {
  host = strip_trailing_dot(host);
  suffix = strip_trailing_dot(suffix);
  if (suffix.empty() || host.size() < suffix.size() + 2) {
    return false;
  }
  return host[host.size() - suffix.size() - 1] == '.' && iequals(host.substr(host.size() - suffix.size()), suffix);
}

std::optional<target_pattern> parse_target_pattern(std::string_view text, std::string* why) {
  target_pattern out;
  if (text.empty()) {
    set_why(why, "empty destination");
    return std::nullopt;
  }
  constexpr std::string_view backend_prefix = "backend:";
  if (text.substr(0, backend_prefix.size()) == backend_prefix) {
    const std::string_view name = text.substr(backend_prefix.size());
    if (!is_config_name(name)) {
      set_why(why, "expected a backend name after 'backend:'");
      return std::nullopt;
    }
    out.kind = target_kind::backend;
    out.name = normalize_host(name);
    return out;
  }
  std::string_view host = text;
  std::string_view ports;
  bool has_ports = false;
  bool bracketed = false;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      set_why(why, "missing ']'");
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    bracketed = true;
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        set_why(why, "expected ':port' after ']'");
        return std::nullopt;
      }
      ports = rest.substr(1);
      has_ports = true;
    }
  } else {
    const auto colon = text.find(':');
    // Several colons without brackets: an IPv6 address or network, which then takes no port.
    if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
      host = text.substr(0, colon);
      ports = text.substr(colon + 1);
      has_ports = true;
    }
  }
  if (has_ports) {
    auto range = parse_port_range(ports, why);
    if (!range) {
      return std::nullopt;
    }
    out.ports = *range;
  }
  if (!bracketed && host == "*") {
    out.kind = target_kind::any;
    return out;
  }
  if (!bracketed && host.substr(0, 2) == "*.") {
    if (!is_valid_host_name(host.substr(2))) {
      set_why(why, "'" + std::string(host.substr(2)) + "' after '*.' is not a valid host name");
      return std::nullopt;
    }
    out.kind = target_kind::subdomains;
    out.name = normalize_host(host.substr(2));
    return out;
  }
  const bool looks_like_address = bracketed || host.find('/') != std::string_view::npos ||
                                  host.find(':') != std::string_view::npos || parse_raw(host).has_value();
  if (looks_like_address) {
    std::string cidr_why;
    auto net = parse_cidr(host, &cidr_why);
    if (!net) {
      set_why(why, "bad address or network: " + cidr_why);
      return std::nullopt;
    }
    out.kind = target_kind::network;
    out.network = *net;
    return out;
  }
  const std::string_view bare = strip_trailing_dot(host);
  const auto last_dot = bare.rfind('.');
  const std::string_view last_label = last_dot == std::string_view::npos ? bare : bare.substr(last_dot + 1);
  if (!is_valid_host_name(host) || std::all_of(last_label.begin(), last_label.end(), is_digit)) {
    set_why(why, "'" + std::string(host) + "' is not a host name, address or network");
    return std::nullopt;
  }
  out.kind = target_kind::host;
  out.name = normalize_host(host);
  return out;
}

bool covers(const target_pattern& outer, const target_pattern& inner) noexcept {
  if (!outer.ports.contains(inner.ports)) {
    return false;
  }
  const bool inner_is_name = inner.kind == target_kind::host || inner.kind == target_kind::backend;
  switch (outer.kind) {
    case target_kind::any: return true;
    case target_kind::backend:
    case target_kind::host:
      // "sql" and "backend:sql" match exactly the same requests: a host equal to "sql".
      return inner_is_name && host_equals(outer.name, inner.name);
    case target_kind::subdomains:
      return (inner_is_name && host_is_subdomain_of(inner.name, outer.name)) ||
             (inner.kind == target_kind::subdomains &&
              (host_equals(inner.name, outer.name) || host_is_subdomain_of(inner.name, outer.name)));
    case target_kind::network: return inner.kind == target_kind::network && contains(outer.network, inner.network);
  }
  return false;
}

}  // namespace edgerelay::config
