// Which protocol a client speaks, from its first byte. Pure.
#pragma once

#include <cstdint>
#include <span>

namespace edgerelay::proxy {

enum class detected : std::uint8_t { need_more, socks5, socks4, http, tls, unknown };

/// SOCKS5 starts 0x05, SOCKS4 0x04, a TLS ClientHello record 0x16, HTTP an upper-case method token.
detected detect_protocol(std::span<const std::uint8_t> first_bytes) noexcept;

}  // namespace edgerelay::proxy
