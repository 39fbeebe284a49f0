// The last reply of a session that ends here (a refusal, an error), then a close that does not
// reset the connection before the client read it.
//
// Closing a TCP socket with unread bytes in its receive queue sends RST instead of FIN, and a
// client that pipelined data behind its request (a SOCKS5 request and its payload in one send, an
// HTTP body) then reads ECONNRESET where it should read the reply and EOF. So: write the reply,
// half-close, read and drop what still comes for a moment, then close. Bounded in bytes and time,
// so a client that keeps sending cannot hold the session.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "proxy/core/asio.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// At most this many client bytes are read and dropped after the reply.
inline constexpr std::size_t linger_max_bytes = 64 * 1024;
/// The drain ends after this long at most (or the caller's limit, when shorter).
inline constexpr std::chrono::milliseconds linger_max_time{1000};

/// Writes `reply` (the client's last bytes; nothing when empty), half-closes, then reads and drops
/// what the client still sends until it closes, linger_max_bytes or min(limit, linger_max_time).
/// The write and the half-close are phases of `dl` within `limit`. The caller closes the stream
/// afterwards. Never throws.
net::awaitable<void> reply_and_close(tunnel::client_stream& client, std::vector<std::uint8_t> reply, phase_deadline& dl,
                                     std::chrono::milliseconds limit);

}  // namespace edgerelay::proxy
