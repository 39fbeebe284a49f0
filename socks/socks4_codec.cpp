// SOCKS4 and SOCKS4a wire codec (the SOCKS4 protocol note and its 4A extension).
#include "socks4_codec.hpp"

#include <algorithm>
#include <cstddef>

namespace edgerelay::socks {
namespace {

constexpr std::size_t header_size = 8;  // VN CD DSTPORT(2) DSTIP(4)

struct field_scan {
  bool complete = false;
  bool too_long = false;
  std::size_t end = 0;  // index of the NUL when complete
};

// Finds the NUL ending a field that starts at `from`, giving up once the field could no longer
// fit in socks4_max_field bytes, so a client can never make us wait for an endless field.
field_scan scan_field(std::span<const std::uint8_t> in, std::size_t from) {
  const std::size_t limit = std::min(in.size(), from + socks4_max_field + 1);
  for (std::size_t i = from; i < limit; ++i) {
    if (in[i] == 0) {
      return {true, false, i};
    }
  }
  return {false, limit == from + socks4_max_field + 1, limit};
}

}  // namespace

parse_result<socks4_request> parse_socks4_request(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{header_size + 1};
  }
  if (in[0] != socks4_version) {
    return protocol_error{reply_code::general_failure, "socks4 request: bad version"};
  }
  if (in.size() < 2) {
    return need_more{header_size + 1};
  }
  if (in[1] != static_cast<std::uint8_t>(command::connect) && in[1] != static_cast<std::uint8_t>(command::bind)) {
    return protocol_error{reply_code::command_not_supported, "socks4 request: bad command"};
  }
  if (in.size() < header_size) {
    return need_more{header_size + 1};
  }
  const auto user = scan_field(in, header_size);
  if (user.too_long) {
    return protocol_error{reply_code::general_failure, "socks4 request: user id too long"};
  }
  if (!user.complete) {
    return need_more{in.size() + 1};
  }
  socks4_request request;
  request.cmd = static_cast<command>(in[1]);
  request.target.port = static_cast<std::uint16_t>((in[2] << 8U) | in[3]);
  const ipv4_bytes ip{in[4], in[5], in[6], in[7]};
  request.user_id.assign(in.begin() + header_size, in.begin() + static_cast<std::ptrdiff_t>(user.end));
  std::size_t consumed = user.end + 1;
  // SOCKS4a marks "resolve this name for me" with the otherwise invalid DSTIP 0.0.0.x, x != 0.
  if (ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0) {
    const auto domain = scan_field(in, consumed);
    if (domain.too_long) {
      return protocol_error{reply_code::general_failure, "socks4a request: domain too long"};
    }
    if (!domain.complete) {
      return need_more{in.size() + 1};
    }
    if (domain.end == consumed) {
      return protocol_error{reply_code::general_failure, "socks4a request: empty domain"};
    }
    auto host =
        host_from_domain(std::string_view(reinterpret_cast<const char*>(in.data()) + consumed, domain.end - consumed));
    if (!host) {
      return protocol_error{reply_code::host_unreachable, "socks4a request: invalid host name"};
    }
    request.target.host = std::move(*host);
    request.socks4a = true;
    consumed = domain.end + 1;
  } else {
    request.target.host = ip;
  }
  return parsed<socks4_request>{std::move(request), consumed};
}

std::array<std::uint8_t, 8> encode_socks4_reply(socks4_reply cd, std::uint16_t port, const ipv4_bytes& addr) {
  return {0x00,
          static_cast<std::uint8_t>(cd),
          static_cast<std::uint8_t>(port >> 8U),
          static_cast<std::uint8_t>(port & 0xFFU),
          addr[0],
          addr[1],
          addr[2],
          addr[3]};
}

std::vector<std::uint8_t> encode_socks4_request(command cmd, const target_address& target, std::string_view user_id) {
  if ((cmd != command::connect && cmd != command::bind) || user_id.size() > socks4_max_field ||
      user_id.find('\0') != std::string_view::npos) {
    return {};
  }
  const auto* v4 = std::get_if<ipv4_bytes>(&target.host);
  const auto* name = std::get_if<std::string>(&target.host);
  if (v4 == nullptr && name == nullptr) {
    return {};
  }
  // A real 0.0.0.x address would read back as the SOCKS4a marker.
  if (v4 != nullptr && (*v4)[0] == 0 && (*v4)[1] == 0 && (*v4)[2] == 0 && (*v4)[3] != 0) {
    return {};
  }
  if (name != nullptr && (name->empty() || name->size() > socks4_max_field || name->find('\0') != std::string::npos)) {
    return {};
  }
  const ipv4_bytes ip = v4 != nullptr ? *v4 : ipv4_bytes{0, 0, 0, 1};
  std::vector<std::uint8_t> out{socks4_version,
                                static_cast<std::uint8_t>(cmd),
                                static_cast<std::uint8_t>(target.port >> 8U),
                                static_cast<std::uint8_t>(target.port & 0xFFU),
                                ip[0],
                                ip[1],
                                ip[2],
                                ip[3]};
  out.insert(out.end(), user_id.begin(), user_id.end());
  out.push_back(0);
  if (name != nullptr) {
    out.insert(out.end(), name->begin(), name->end());
    out.push_back(0);
  }
  return out;
}

}  // namespace edgerelay::socks
