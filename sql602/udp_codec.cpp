// 602SQL UDP datagram codecs (see sql602_udp.hpp).
#include "sql602/udp_codec.hpp"

#include <algorithm>
#include <string_view>

namespace edgerelay::tunnel::sql602 {
namespace {

bool is_space(std::uint8_t c) noexcept {
  return c != 0 && c <= ' ';
}

/// `in` up to (not including) its first NUL.
std::span<const std::uint8_t> up_to_nul(std::span<const std::uint8_t> in) noexcept {
  const auto nul = std::find(in.begin(), in.end(), std::uint8_t{0});
  return in.first(static_cast<std::size_t>(nul - in.begin()));
}

void append_decimal(std::vector<std::uint8_t>& out, std::int64_t v) {
  const std::string s = std::to_string(v);
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace

std::optional<std::int32_t> parse_str2int(std::span<const std::uint8_t> text) noexcept {
  text = up_to_nul(text);
  std::size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  const std::size_t digits_at = i;
  std::int64_t value = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    value = value * 10 + (text[i] - '0');
    if (value > 2147483647) return std::nullopt;
    ++i;
  }
  if (i == digits_at) return std::nullopt;
  while (i < text.size()) {
    if (!is_space(text[i])) return std::nullopt;
    ++i;
  }
  return static_cast<std::int32_t>(negative ? -value : value);
}

std::uint8_t datagram_kind(std::span<const std::uint8_t> datagram) noexcept {
  return datagram.empty() ? 0 : datagram[0];
}

std::optional<discovery_query> parse_discovery_query(std::span<const std::uint8_t> datagram) noexcept {
  if (datagram_kind(datagram) != sqp_for_server) return std::nullopt;
  discovery_query q;
  if (const auto n = parse_str2int(datagram.subspan(1))) {
    // A C short on the client: keep the low 16 bits, as the server's htons does.
    q.reply_port = static_cast<std::uint16_t>(static_cast<std::uint32_t>(*n) & 0xFFFFU);
    q.named_port = true;
  }
  return q;
}

std::vector<std::uint8_t> encode_discovery_query(std::uint16_t reply_port) {
  std::vector<std::uint8_t> out{sqp_for_server};
  append_decimal(out, static_cast<std::int16_t>(reply_port));
  out.push_back(0);
  return out;
}

std::optional<discovery_reply> parse_discovery_reply(std::span<const std::uint8_t> datagram) {
  if (datagram_kind(datagram) != sqp_server_name) return std::nullopt;
  const auto body = up_to_nul(datagram.subspan(1));
  const auto sep = std::find(body.begin(), body.end(), std::uint8_t{0x01});
  discovery_reply r;
  r.name.assign(body.begin(), sep);
  if (sep != body.end()) {
    const auto n = parse_str2int(body.subspan(static_cast<std::size_t>(sep - body.begin()) + 1));
    if (!n || *n < 1 || *n > 65535) return std::nullopt;
    r.portbase = static_cast<std::uint16_t>(*n);
  }
  return r;
}

std::vector<std::uint8_t> encode_discovery_reply(const discovery_reply& reply) {
  std::vector<std::uint8_t> out{sqp_server_name};
  std::size_t kept = 0;
  for (const char c : reply.name) {
    const auto u = static_cast<std::uint8_t>(c);
    if (u == 0 || u == 1) continue;
    if (++kept > 31) break;
    out.push_back(u);
  }
  if (reply.portbase != default_portbase) {
    out.push_back(0x01);
    append_decimal(out, reply.portbase);
  }
  out.push_back(0);
  return out;
}

std::optional<std::vector<std::uint8_t>> rewrite_discovery_reply(std::span<const std::uint8_t> datagram,
                                                                 std::uint16_t portbase) {
  auto r = parse_discovery_reply(datagram);
  if (!r) return std::nullopt;
  r->portbase = portbase;
  return encode_discovery_reply(*r);
}

std::optional<ipv4_bytes> parse_break(std::span<const std::uint8_t> datagram) noexcept {
  if (datagram_kind(datagram) != sqp_break) return std::nullopt;
  const auto n = parse_str2int(datagram.subspan(1));
  if (!n || *n < 0) return std::nullopt;
  const auto v = static_cast<std::uint32_t>(*n);
  return ipv4_bytes{static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8U),
                    static_cast<std::uint8_t>(v >> 16U), static_cast<std::uint8_t>(v >> 24U)};
}

std::optional<std::vector<std::uint8_t>> encode_break(const ipv4_bytes& a) {
  if (!breakable(a)) return std::nullopt;
  const std::uint32_t v = static_cast<std::uint32_t>(a[0]) | static_cast<std::uint32_t>(a[1]) << 8U |
                          static_cast<std::uint32_t>(a[2]) << 16U | static_cast<std::uint32_t>(a[3]) << 24U;
  std::vector<std::uint8_t> out{sqp_break};
  append_decimal(out, v);
  out.push_back(0);
  return out;
}

}  // namespace edgerelay::tunnel::sql602
