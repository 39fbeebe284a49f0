// SOCKS5 wire codec: RFC 1928 greeting, request and reply, RFC 1929 username/password.
#include "socks5_codec.hpp"

#include <algorithm>
#include <cstddef>

namespace edgerelay::socks {
namespace {

std::uint16_t read_port(std::span<const std::uint8_t> in, std::size_t at) {
  return static_cast<std::uint16_t>((in[at] << 8U) | in[at + 1]);
}

void append_port(std::vector<std::uint8_t>& out, std::uint16_t port) {
  out.push_back(static_cast<std::uint8_t>(port >> 8U));
  out.push_back(static_cast<std::uint8_t>(port & 0xFFU));
}

// Moves a result computed on in.subspan(offset) back to the caller's frame of reference.
template <class T>
parse_result<T> shifted(parse_result<T> r, std::size_t offset) {
  if (auto* more = std::get_if<need_more>(&r)) {
    more->at_least += offset;
  } else if (auto* done = std::get_if<parsed<T>>(&r)) {
    done->consumed += offset;
  }
  return r;
}

}  // namespace

bool socks5_greeting::offers(method m) const {
  return std::find(methods.begin(), methods.end(), static_cast<std::uint8_t>(m)) != methods.end();
}

parse_result<socks5_greeting> parse_socks5_greeting(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{2};
  }
  if (in[0] != socks5_version) {
    return protocol_error{reply_code::general_failure, "socks5 greeting: bad version"};
  }
  if (in.size() < 2) {
    return need_more{2};
  }
  const std::size_t count = in[1];
  if (count == 0) {
    return protocol_error{reply_code::general_failure, "socks5 greeting: no methods"};
  }
  if (in.size() < 2 + count) {
    return need_more{2 + count};
  }
  const auto methods = in.subspan(2, count);
  return parsed<socks5_greeting>{socks5_greeting{{methods.begin(), methods.end()}}, 2 + count};
}

parse_result<userpass_request> parse_userpass_request(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{2};
  }
  if (in[0] != userpass_version) {
    return protocol_error{reply_code::general_failure, "rfc1929: bad version"};
  }
  if (in.size() < 2) {
    return need_more{2};
  }
  const std::size_t ulen = in[1];
  if (ulen == 0) {
    return protocol_error{reply_code::general_failure, "rfc1929: empty user name"};
  }
  const std::size_t plen_at = 2 + ulen;
  if (in.size() <= plen_at) {
    return need_more{plen_at + 1};
  }
  const std::size_t plen = in[plen_at];
  const std::size_t total = plen_at + 1 + plen;
  if (in.size() < total) {
    return need_more{total};
  }
  const auto user = in.subspan(2, ulen);
  const auto password = in.subspan(plen_at + 1, plen);
  return parsed<userpass_request>{userpass_request{{user.begin(), user.end()}, {password.begin(), password.end()}},
                                  total};
}

parse_result<target_address> parse_socks5_address(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{1};
  }
  std::size_t addr_len = 0;
  std::size_t addr_at = 1;
  switch (in[0]) {
    case static_cast<std::uint8_t>(address_type::ipv4): addr_len = 4; break;
    case static_cast<std::uint8_t>(address_type::ipv6): addr_len = 16; break;
    case static_cast<std::uint8_t>(address_type::domain):
      if (in.size() < 2) {
        return need_more{2};
      }
      addr_len = in[1];
      addr_at = 2;
      if (addr_len == 0) {
        return protocol_error{reply_code::general_failure, "socks5 address: empty domain"};
      }
      break;
    default: return protocol_error{reply_code::address_type_not_supported, "socks5 address: bad address type"};
  }
  const std::size_t total = addr_at + addr_len + 2;
  if (in.size() < total) {
    return need_more{total};
  }
  target_address target;
  const auto addr = in.subspan(addr_at, addr_len);
  if (in[0] == static_cast<std::uint8_t>(address_type::ipv4)) {
    ipv4_bytes v4{};
    std::copy(addr.begin(), addr.end(), v4.begin());
    target.host = v4;
  } else if (in[0] == static_cast<std::uint8_t>(address_type::ipv6)) {
    ipv6_bytes v6{};
    std::copy(addr.begin(), addr.end(), v6.begin());
    target.host = v6;
  } else {
    // Only a whole domain is judged, so the outcome cannot depend on where the input was cut.
    auto host = host_from_domain(std::string_view(reinterpret_cast<const char*>(addr.data()), addr.size()));
    if (!host) {
      return protocol_error{reply_code::host_unreachable, "socks5 address: invalid host name"};
    }
    target.host = std::move(*host);
  }
  target.port = read_port(in, addr_at + addr_len);
  return parsed<target_address>{std::move(target), total};
}

parse_result<socks5_request> parse_socks5_request(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{4};
  }
  if (in[0] != socks5_version) {
    return protocol_error{reply_code::general_failure, "socks5 request: bad version"};
  }
  if (in.size() < 2) {
    return need_more{4};
  }
  if (in[1] < static_cast<std::uint8_t>(command::connect) ||
      in[1] > static_cast<std::uint8_t>(command::udp_associate)) {
    return protocol_error{reply_code::command_not_supported, "socks5 request: bad command"};
  }
  if (in.size() < 4) {
    return need_more{4};
  }
  const auto cmd = static_cast<command>(in[1]);
  auto addr = shifted(parse_socks5_address(in.subspan(3)), 3);
  if (auto* more = std::get_if<need_more>(&addr)) {
    return *more;
  }
  if (auto* error = std::get_if<protocol_error>(&addr)) {
    return *error;
  }
  auto& done = std::get<parsed<target_address>>(addr);
  return parsed<socks5_request>{socks5_request{cmd, std::move(done.value)}, done.consumed};
}

std::array<std::uint8_t, 2> encode_method_selection(method m) {
  return {socks5_version, static_cast<std::uint8_t>(m)};
}

std::array<std::uint8_t, 2> encode_auth_status(bool ok) {
  return {userpass_version, static_cast<std::uint8_t>(ok ? 0x00 : 0x01)};
}

std::vector<std::uint8_t> encode_socks5_reply(reply_code rep, const bound_host& host, std::uint16_t port) {
  std::vector<std::uint8_t> out{socks5_version, static_cast<std::uint8_t>(rep), 0x00};
  if (const auto* v4 = std::get_if<ipv4_bytes>(&host)) {
    out.reserve(10);
    out.push_back(static_cast<std::uint8_t>(address_type::ipv4));
    out.insert(out.end(), v4->begin(), v4->end());
  } else {
    const auto& v6 = std::get<ipv6_bytes>(host);
    out.reserve(22);
    out.push_back(static_cast<std::uint8_t>(address_type::ipv6));
    out.insert(out.end(), v6.begin(), v6.end());
  }
  append_port(out, port);
  return out;
}

bool append_socks5_address(std::vector<std::uint8_t>& out, const target_address& target) {
  if (const auto* v4 = std::get_if<ipv4_bytes>(&target.host)) {
    out.push_back(static_cast<std::uint8_t>(address_type::ipv4));
    out.insert(out.end(), v4->begin(), v4->end());
  } else if (const auto* v6 = std::get_if<ipv6_bytes>(&target.host)) {
    out.push_back(static_cast<std::uint8_t>(address_type::ipv6));
    out.insert(out.end(), v6->begin(), v6->end());
  } else {
    const auto& name = std::get<std::string>(target.host);
    if (name.empty() || name.size() > 255) {
      return false;
    }
    out.push_back(static_cast<std::uint8_t>(address_type::domain));
    out.push_back(static_cast<std::uint8_t>(name.size()));
    out.insert(out.end(), name.begin(), name.end());
  }
  append_port(out, target.port);
  return true;
}

std::vector<std::uint8_t> encode_userpass_request(std::string_view user, std::string_view password) {
  if (user.empty() || user.size() > 255 || password.size() > 255) {
    return {};
  }
  std::vector<std::uint8_t> out;
  out.reserve(3 + user.size() + password.size());
  out.push_back(userpass_version);
  out.push_back(static_cast<std::uint8_t>(user.size()));
  out.insert(out.end(), user.begin(), user.end());
  out.push_back(static_cast<std::uint8_t>(password.size()));
  out.insert(out.end(), password.begin(), password.end());
  return out;
}

std::vector<std::uint8_t> encode_socks5_request(command cmd, const target_address& target) {
  std::vector<std::uint8_t> out{socks5_version, static_cast<std::uint8_t>(cmd), 0x00};
  if (!append_socks5_address(out, target)) {
    return {};
  }
  return out;
}

}  // namespace edgerelay::socks
