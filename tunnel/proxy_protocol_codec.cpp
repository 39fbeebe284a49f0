// PROXY protocol v1/v2 parser and v2 encoder; see proxy_protocol_codec.hpp.
#include "tunnel/proxy_protocol_codec.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

namespace edgerelay::tunnel {
namespace {

constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::size_t v2_fixed = 16;

constexpr std::uint8_t cmd_local = 0x0;
constexpr std::uint8_t cmd_proxy = 0x1;
constexpr std::uint8_t fam_unspec = 0x00;
constexpr std::uint8_t fam_inet_stream = 0x11;
constexpr std::uint8_t fam_inet6_stream = 0x21;

constexpr std::uint8_t tlv_alpn = 0x01;
constexpr std::uint8_t tlv_authority = 0x02;
constexpr std::uint8_t tlv_crc32c = 0x03;
constexpr std::uint8_t tlv_noop = 0x04;
constexpr std::uint8_t tlv_unique_id = 0x05;
constexpr std::uint8_t tlv_ssl = 0x20;
constexpr std::uint8_t ssl_version = 0x21;
constexpr std::uint8_t ssl_cn = 0x22;
constexpr std::uint8_t ssl_cipher = 0x23;
constexpr std::uint8_t ssl_sig_alg = 0x24;
constexpr std::uint8_t ssl_key_alg = 0x25;
constexpr std::size_t max_unique_id = 128;

/// Size of the address block of a family byte, or nullopt for a byte no version defines.
std::optional<std::size_t> address_block(std::uint8_t fam) noexcept {
  switch (fam) {
    case 0x00: return 0;  // UNSPEC
    case 0x11:
    case 0x12: return 12;  // INET STREAM / DGRAM
    case 0x21:
    case 0x22: return 36;  // INET6
    case 0x31:
    case 0x32: return 216;  // UNIX
    default: return std::nullopt;
  }
}

std::uint16_t be16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8U) | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24U) | (std::uint32_t{p[1]} << 16U) | (std::uint32_t{p[2]} << 8U) | p[3];
}

std::string text_of(std::span<const std::uint8_t> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

/// Splits on single spaces; an empty token (two spaces, a leading or trailing one) is an error.
std::optional<std::vector<std::string_view>> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  for (;;) {
    const std::size_t sp = line.find(' ', at);
    const std::string_view token = line.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at);
    if (token.empty()) {
      return std::nullopt;
    }
    out.push_back(token);
    if (sp == std::string_view::npos) {
      return out;
    }
    at = sp + 1;
  }
}

std::optional<std::uint16_t> parse_port(std::string_view s) noexcept {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  unsigned v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

/// inet_pton on a NUL-terminated copy: strict dotted quads (no leading zeros) and RFC 4291 text.
bool parse_address(std::string_view s, bool v6, proxy_address& out) {
  if (s.size() > 45) return false;
  char text[46] = {};
  std::copy(s.begin(), s.end(), text);
  out.v6 = v6;
  out.bytes = {};
  return inet_pton(v6 ? AF_INET6 : AF_INET, text, out.bytes.data()) == 1;
}

const std::array<std::uint32_t, 256>& crc_table() noexcept {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? (c >> 1U) ^ 0x82F63B78U : c >> 1U;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

/// The SSL TLV's value: client bits, verify result, then its own sub-TLVs.
proxy_error parse_ssl(std::span<const std::uint8_t> v, proxy_ssl& out) {
  if (v.size() < 5) return proxy_error::v2_bad_tlv;
  out.client = v[0];
  out.verify = be32(v.data() + 1);
  std::size_t at = 5;
  while (at < v.size()) {
    if (v.size() - at < 3) return proxy_error::v2_tlv_truncated;
    const std::uint8_t type = v[at];
    const std::size_t len = be16(v.data() + at + 1);
    at += 3;
    if (v.size() - at < len) return proxy_error::v2_tlv_truncated;
    const std::string value = text_of(v.subspan(at, len));
    switch (type) {
      case ssl_version: out.version = value; break;
      case ssl_cn: out.cn = value; break;
      case ssl_cipher: out.cipher = value; break;
      case ssl_sig_alg: out.sig_alg = value; break;
      case ssl_key_alg: out.key_alg = value; break;
      default: break;  // proxy-protocol.txt: unknown sub-types are ignored
    }
    at += len;
  }
  return proxy_error::none;
}

void put16(std::vector<std::uint8_t>& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8U));
  out.push_back(static_cast<std::uint8_t>(v & 0xFFU));
}

void put_tlv(std::vector<std::uint8_t>& out, std::uint8_t type, std::span<const std::uint8_t> value) {
  out.push_back(type);
  put16(out, value.size());
  out.insert(out.end(), value.begin(), value.end());
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

std::string_view to_string(proxy_error e) noexcept {
  switch (e) {
    case proxy_error::none: return "none";
    case proxy_error::bad_signature: return "bad_signature";
    case proxy_error::v1_too_long: return "v1_too_long";
    case proxy_error::v1_bad_line: return "v1_bad_line";
    case proxy_error::v1_bad_protocol: return "v1_bad_protocol";
    case proxy_error::v1_bad_address: return "v1_bad_address";
    case proxy_error::v1_bad_port: return "v1_bad_port";
    case proxy_error::v2_bad_version: return "v2_bad_version";
    case proxy_error::v2_bad_command: return "v2_bad_command";
    case proxy_error::v2_bad_family: return "v2_bad_family";
    case proxy_error::v2_too_long: return "v2_too_long";
    case proxy_error::v2_short_addresses: return "v2_short_addresses";
    case proxy_error::v2_tlv_truncated: return "v2_tlv_truncated";
    case proxy_error::v2_bad_tlv: return "v2_bad_tlv";
    case proxy_error::v2_crc_mismatch: return "v2_crc_mismatch";
  }
  return "unknown";
}

std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc) noexcept {
  const auto& table = crc_table();
  crc = ~crc;
  for (const std::uint8_t b : data) crc = table[(crc ^ b) & 0xFFU] ^ (crc >> 8U);
  return ~crc;
}

proxy_signature detect_proxy_signature(std::span<const std::uint8_t> first) noexcept {
  const auto against = [&first](std::span<const std::uint8_t> sig) {
    const std::size_t n = std::min(first.size(), sig.size());
    if (!std::equal(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(n), sig.begin())) {
      return proxy_signature::absent;
    }
    return n == sig.size() ? proxy_signature::present : proxy_signature::partial;
  };
  if (first.empty()) return proxy_signature::partial;
  const auto v1 = against(bytes_of(v1_prefix));
  return v1 != proxy_signature::absent ? v1 : against(proxy_v2_signature);
}

proxy_header_parser::result proxy_header_parser::fail(proxy_error e, std::size_t consumed) {
  state_ = status::failed;
  error_ = e;
  return {state_, consumed};
}

proxy_header_parser::result proxy_header_parser::feed(std::span<const std::uint8_t> in) {
  if (state_ != status::need_more) {
    return {state_, 0};
  }
  std::size_t used = 0;
  while (used < in.size()) {
    const std::uint8_t b = in[used++];
    buf_.push_back(b);
    const std::size_t n = buf_.size();
    if (buf_[0] == 'P') {
      if (n <= v1_prefix.size()) {
        if (b != static_cast<std::uint8_t>(v1_prefix[n - 1])) return fail(proxy_error::bad_signature, used);
        continue;
      }
      if (b == '\n') return finish_v1(used);
      if (n >= proxy_v1_max_bytes) return fail(proxy_error::v1_too_long, used);
      continue;
    }
    if (n <= proxy_v2_signature.size()) {
      if (b != proxy_v2_signature[n - 1]) return fail(proxy_error::bad_signature, used);
      continue;
    }
    if (n == 13) {
      if ((b >> 4U) != 0x2) return fail(proxy_error::v2_bad_version, used);
      if ((b & 0x0FU) != cmd_local && (b & 0x0FU) != cmd_proxy) return fail(proxy_error::v2_bad_command, used);
      continue;
    }
    if (n == 14) {
      if (!address_block(b)) return fail(proxy_error::v2_bad_family, used);
      const bool proxy_cmd = (buf_[12] & 0x0FU) == cmd_proxy;
      if (proxy_cmd && b != fam_unspec && b != fam_inet_stream && b != fam_inet6_stream) {
        return fail(proxy_error::v2_bad_family, used);
      }
      continue;
    }
    if (n == v2_fixed) {
      const std::size_t len = be16(buf_.data() + 14);
      v2_total_ = v2_fixed + len;
      if (v2_total_ > proxy_v2_max_bytes) return fail(proxy_error::v2_too_long, used);
      if (len < *address_block(buf_[13])) return fail(proxy_error::v2_short_addresses, used);
    }
    if (n >= v2_fixed) {
      // The rest is opaque until it is all in: take it in one step, not byte by byte.
      const std::size_t want = std::min(v2_total_ - n, in.size() - used);
      buf_.insert(buf_.end(), in.begin() + static_cast<std::ptrdiff_t>(used),
                  in.begin() + static_cast<std::ptrdiff_t>(used + want));
      used += want;
      if (buf_.size() == v2_total_) return finish_v2(used);
    }
  }
  return {status::need_more, used};
}

proxy_header_parser::result proxy_header_parser::finish_v1(std::size_t consumed) {
  header_ = proxy_header{};
  header_.version = 1;
  if (buf_.size() < v1_prefix.size() + 2 || buf_[buf_.size() - 2] != '\r') {
    return fail(proxy_error::v1_bad_line, consumed);
  }
  const std::string_view line(reinterpret_cast<const char*>(buf_.data()) + v1_prefix.size(),
                              buf_.size() - v1_prefix.size() - 2);
  if (line.starts_with("UNKNOWN") && (line.size() == 7 || line[7] == ' ')) {
    // proxy-protocol.txt 2.1: whatever follows UNKNOWN is ignored; the real endpoints stand.
    state_ = status::done;
    return {state_, consumed};
  }
  if (std::any_of(line.begin(), line.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    return fail(proxy_error::v1_bad_line, consumed);
  }
  const auto tokens = split_spaces(line);
  if (!tokens || tokens->empty()) return fail(proxy_error::v1_bad_line, consumed);
  const std::string_view proto = (*tokens)[0];
  if (proto != "TCP4" && proto != "TCP6") return fail(proxy_error::v1_bad_protocol, consumed);
  if (tokens->size() != 5) return fail(proxy_error::v1_bad_line, consumed);
  const bool v6 = proto == "TCP6";
  if (!parse_address((*tokens)[1], v6, header_.source) || !parse_address((*tokens)[2], v6, header_.destination)) {
    return fail(proxy_error::v1_bad_address, consumed);
  }
  const auto sport = parse_port((*tokens)[3]);
  const auto dport = parse_port((*tokens)[4]);
  if (!sport || !dport) return fail(proxy_error::v1_bad_port, consumed);
  header_.source.port = *sport;
  header_.destination.port = *dport;
  header_.proxied = true;
  state_ = status::done;
  return {state_, consumed};
}

proxy_header_parser::result proxy_header_parser::finish_v2(std::size_t consumed) {
  header_ = proxy_header{};
  header_.version = 2;
  const std::uint8_t fam = buf_[13];
  const std::size_t block = *address_block(fam);
  const std::uint8_t* a = buf_.data() + v2_fixed;
  if ((buf_[12] & 0x0FU) == cmd_proxy && fam != fam_unspec) {
    const bool v6 = fam == fam_inet6_stream;
    const std::size_t len = v6 ? 16 : 4;
    header_.source.v6 = header_.destination.v6 = v6;
    std::copy(a, a + len, header_.source.bytes.begin());
    std::copy(a + len, a + 2 * len, header_.destination.bytes.begin());
    header_.source.port = be16(a + 2 * len);
    header_.destination.port = be16(a + 2 * len + 2);
    header_.proxied = true;
  }
  const std::span<const std::uint8_t> all(buf_);
  std::size_t at = v2_fixed + block;
  bool seen_crc = false;
  while (at < all.size()) {
    if (all.size() - at < 3) return fail(proxy_error::v2_tlv_truncated, consumed);
    const std::uint8_t type = all[at];
    const std::size_t len = be16(all.data() + at + 1);
    const std::size_t value_at = at + 3;
    if (all.size() - value_at < len) return fail(proxy_error::v2_tlv_truncated, consumed);
    const auto value = all.subspan(value_at, len);
    switch (type) {
      case tlv_alpn:
        if (len == 0 || !header_.alpn.empty()) return fail(proxy_error::v2_bad_tlv, consumed);
        header_.alpn = text_of(value);
        break;
      case tlv_authority:
        if (len == 0 || !header_.authority.empty()) return fail(proxy_error::v2_bad_tlv, consumed);
        header_.authority = text_of(value);
        break;
      case tlv_crc32c: {
        if (len != 4 || seen_crc) return fail(proxy_error::v2_bad_tlv, consumed);
        seen_crc = true;
        std::vector<std::uint8_t> zeroed(all.begin(), all.end());
        std::fill_n(zeroed.begin() + static_cast<std::ptrdiff_t>(value_at), 4, std::uint8_t{0});
        if (crc32c(zeroed) != be32(value.data())) return fail(proxy_error::v2_crc_mismatch, consumed);
        header_.crc_checked = true;
        break;
      }
      case tlv_noop: break;
      case tlv_unique_id:
        if (len == 0 || len > max_unique_id || !header_.unique_id.empty()) {
          return fail(proxy_error::v2_bad_tlv, consumed);
        }
        header_.unique_id = text_of(value);
        break;
      case tlv_ssl: {
        if (header_.ssl) return fail(proxy_error::v2_bad_tlv, consumed);
        proxy_ssl ssl;
        if (const proxy_error e = parse_ssl(value, ssl); e != proxy_error::none) return fail(e, consumed);
        header_.ssl = std::move(ssl);
        break;
      }
      default: break;  // NETNS, custom and future types: proxy-protocol.txt says ignore them
    }
    at = value_at + len;
  }
  state_ = status::done;
  return {state_, consumed};
}

std::vector<std::uint8_t> encode_proxy_v2(const proxy_header& h, bool with_crc) {
  std::vector<std::uint8_t> out(proxy_v2_signature.begin(), proxy_v2_signature.end());
  const bool v6 = h.source.v6 || h.destination.v6;
  out.push_back(static_cast<std::uint8_t>(0x20U | (h.proxied ? cmd_proxy : cmd_local)));
  out.push_back(h.proxied ? (v6 ? fam_inet6_stream : fam_inet_stream) : fam_unspec);
  put16(out, 0);  // patched below
  if (h.proxied) {
    const std::size_t len = v6 ? 16 : 4;
    const auto widen = [v6](const proxy_address& a) {
      if (!v6 || a.v6) return a.bytes;
      std::array<std::uint8_t, 16> mapped{};  // an IPv4 end beside an IPv6 one: ::ffff:a.b.c.d
      mapped[10] = mapped[11] = 0xFF;
      std::copy(a.bytes.begin(), a.bytes.begin() + 4, mapped.begin() + 12);
      return mapped;
    };
    const auto src = widen(h.source);
    const auto dst = widen(h.destination);
    out.insert(out.end(), src.begin(), src.begin() + static_cast<std::ptrdiff_t>(len));
    out.insert(out.end(), dst.begin(), dst.begin() + static_cast<std::ptrdiff_t>(len));
    put16(out, h.source.port);
    put16(out, h.destination.port);
  }
  if (!h.alpn.empty()) put_tlv(out, tlv_alpn, bytes_of(h.alpn));
  if (!h.authority.empty()) put_tlv(out, tlv_authority, bytes_of(h.authority));
  if (!h.unique_id.empty()) put_tlv(out, tlv_unique_id, bytes_of(h.unique_id));
  if (h.ssl) {
    std::vector<std::uint8_t> v{
        h.ssl->client, static_cast<std::uint8_t>(h.ssl->verify >> 24U), static_cast<std::uint8_t>(h.ssl->verify >> 16U),
        static_cast<std::uint8_t>(h.ssl->verify >> 8U), static_cast<std::uint8_t>(h.ssl->verify)};
    const auto sub = [&v](std::uint8_t type, const std::string& s) {
      if (!s.empty()) put_tlv(v, type, bytes_of(s));
    };
    sub(ssl_version, h.ssl->version);
    sub(ssl_cn, h.ssl->cn);
    sub(ssl_cipher, h.ssl->cipher);
    sub(ssl_sig_alg, h.ssl->sig_alg);
    sub(ssl_key_alg, h.ssl->key_alg);
    put_tlv(out, tlv_ssl, v);
  }
  std::size_t crc_at = 0;
  if (with_crc) {
    const std::array<std::uint8_t, 4> zero{};
    put_tlv(out, tlv_crc32c, zero);
    crc_at = out.size() - 4;
  }
  if (out.size() > proxy_v2_max_bytes) {
    throw std::length_error("PROXY v2 header longer than " + std::to_string(proxy_v2_max_bytes) + " bytes");
  }
  const std::size_t len = out.size() - v2_fixed;
  out[14] = static_cast<std::uint8_t>(len >> 8U);
  out[15] = static_cast<std::uint8_t>(len & 0xFFU);
  if (with_crc) {
    const std::uint32_t c = crc32c(out);
    for (int i = 0; i < 4; ++i)
      out[crc_at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(c >> (24 - 8 * i));
  }
  return out;
}

}  // namespace edgerelay::tunnel
