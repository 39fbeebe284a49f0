// SOCKS4/4a client side, sans-I/O: the CONNECT request a gateway sends an upstream SOCKS4a server,
// and the 8-byte reply. Same driver loop as socks5_client (socks5_client_codec.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "parse_result.hpp"
#include "socks5_client_codec.hpp"
#include "target.hpp"
#include "wire.hpp"

namespace edgerelay::socks {

/// VN CD DSTPORT DSTIP, always 8 bytes.
struct socks4_reply_message {
  std::uint8_t cd = 0;
  std::uint16_t port = 0;
  ipv4_bytes address{};
  friend bool operator==(const socks4_reply_message&, const socks4_reply_message&) = default;
};

/// Errors: VN is neither 0 (the protocol) nor 4 (what some servers send back, taken as 0).
parse_result<socks4_reply_message> parse_socks4_reply(std::span<const std::uint8_t> in);

/// One CONNECT with a SOCKS4a server: a domain goes as SOCKS4a, an IPv4 address as SOCKS4.
class socks4_client {
 public:
  /// `user_id`: the USERID field (SOCKS4 has no password).
  socks4_client(target_address target, std::string user_id);

  /// The request; empty when the target cannot be sent (IPv6, a name over 255 bytes). Call once.
  std::vector<std::uint8_t> start();
  client_step_t feed(std::span<const std::uint8_t> in);
  /// Bytes still needed for the reply; 0 once it is complete.
  std::size_t wanted() const noexcept;
  std::span<const std::uint8_t> leftover() const noexcept;

 private:
  target_address target_;
  std::string user_id_;
  std::vector<std::uint8_t> buffer_;
  bool started_ = false;
  bool done_ = false;
  bool connected_ = false;
};

}  // namespace edgerelay::socks
