// Checking a client's credentials against the configured users (SOCKS5 RFC 1929 and HTTP Basic).
#pragma once

#include <string_view>

#include "proxy/core/asio.hpp"
#include "proxy/core/context.hpp"
#include "proxy/observe/access_log.hpp"
#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::proxy {

/// True when `user` exists and `password` matches its hash. A success cached by this worker is
/// answered at once; anything else is verified on the verification pool while the session waits,
/// so the worker keeps serving its other sessions. A source in its back-off
/// (limits.auth_failures) is refused without a verification, `rec.detail` "auth_throttled"; a
/// failure is answered late when its user name has failed often. Runs on the session's worker;
/// `user` and `password` must stay valid until it completes.
net::awaitable<bool> check_credentials(const session_context& ctx, std::string_view user, std::string_view password,
                                       access_record& rec);

/// Records the user a client names inside a login (RFC 1929, Basic) as the
/// session's user, unless a verified client certificate already named it: the certificate was
/// checked during the TLS handshake, a name in the protocol is only claimed.
void record_claimed_user(access_record& rec, std::string_view user);

/// For HTTP requests: true on a listener without auth, else when Proxy-Authorization carries valid
/// Basic credentials (check_credentials). Records the user it names in `rec` (never the password).
net::awaitable<bool> http_proxy_authorized(const session_context& ctx, const tunnel::request_head& head,
                                           access_record& rec);

}  // namespace edgerelay::proxy
