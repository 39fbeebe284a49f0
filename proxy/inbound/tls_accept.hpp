// The TLS server handshake of a client, and what it tells the access record.
#pragma once

#include <cstdint>
#include <span>

#include <boost/asio/ssl/context.hpp>

#include "proxy/core/context.hpp"
#include "proxy/core/phase_deadline.hpp"
#include "proxy/observe/access_log.hpp"
#include "tunnel/tls/client_stream.hpp"

namespace edgerelay::proxy {

/// The TLS server handshake on `client`, fed `first` (the bytes detection already read), under
/// the deadline's current phase. Records what was negotiated (version, SNI, the certificate's
/// identity as the session's user) or why it failed (tls_error, the listener's failure log).
net::awaitable<bool> accept_tls(tunnel::client_stream& client, net::ssl::context& tls,
                                std::span<const std::uint8_t> first, const session_context& ctx, access_record& rec,
                                phase_deadline& dl);

}  // namespace edgerelay::proxy
