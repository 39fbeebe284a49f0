// Checking a client's credentials against the configured users (SOCKS5 RFC 1929 and HTTP Basic).
#pragma once

#include <string_view>

#include "proxy/observe/access_log.hpp"
#include "proxy/core/context.hpp"
#include "tunnel/http_connect_codec.hpp"

namespace edgerelay::proxy {

/// True when `user` exists and `password` matches its hash; successful checks are cached per worker.
bool check_credentials(const session_context& ctx, std::string_view user, std::string_view password);

/// For HTTP requests: true on a listener without auth, else when Proxy-Authorization carries valid
/// Basic credentials. Records the user it names in `rec` (never the password).
/// Records the user a client names inside a login (RFC 1929, Basic) as the
/// session's user, unless a verified client certificate already named it: the certificate was
/// checked during the TLS handshake, a name in the protocol is only claimed.
void record_claimed_user(access_record& rec, std::string_view user);

bool http_proxy_authorized(const session_context& ctx, const tunnel::request_head& head, access_record& rec);

}  // namespace edgerelay::proxy
