// Asio addresses as the config layer sees them, and endpoints as the logs write them: one
// spelling for every room (the connector, the doors, the admin listener).
#pragma once

#include <string>

#include "config/address.hpp"
#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// The address as the policy compares it: IPv4-mapped IPv6 folded to IPv4.
config::ip_address to_config_address(const net::ip::address& a) noexcept;
/// "a.b.c.d:port" or "[v6]:port", for logs.
std::string to_string(const tcp::endpoint& ep);

}  // namespace edgerelay::proxy
