#include "proxy/core/endpoint.hpp"

#include <algorithm>

namespace edgerelay::proxy {

config::ip_address to_config_address(const net::ip::address& a) noexcept {
  config::ip_address out;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
    return out;
  }
  const auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) {
    const auto b = net::ip::make_address_v4(net::ip::v4_mapped, v6).to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
    return out;
  }
  const auto b = v6.to_bytes();
  out.v6 = true;
  std::copy(b.begin(), b.end(), out.bytes.begin());
  return out;
}

std::string to_string(const tcp::endpoint& ep) {
  const auto a = ep.address();
  const std::string port = std::to_string(ep.port());
  return a.is_v6() ? "[" + a.to_string() + "]:" + port : a.to_string() + ":" + port;
}

}  // namespace edgerelay::proxy
