// How a session ended before or at connect, and what each client protocol says for it (docs/config.md).
#pragma once

#include <cstdint>
#include <string_view>

#include <boost/system/error_code.hpp>

#include "socks/wire.hpp"

namespace edgerelay::proxy {

enum class outcome : std::uint8_t {
  success,
  denied,
  network_unreachable,
  host_unreachable,  ///< includes "name not found"
  connection_refused,
  connect_timeout,
  command_not_supported,
  address_type_not_supported,
  bad_credentials,
  malformed,
  handshake_timeout,
  tls_failed,          ///< the client's TLS handshake failed (the record's tls_error says why)
  tls_required,        ///< a plaintext client on a listener whose tls is `required`
  backend_tls_failed,  ///< the TLS handshake with a backend failed (not verified, wrong name, ...)
  general_failure,
};

/// The word the access log uses for an outcome ("ok", "denied", "refused", ...).
std::string_view to_string(outcome o) noexcept;

socks::reply_code to_socks5_reply(outcome o) noexcept;
socks::socks4_reply to_socks4_reply(outcome o) noexcept;
/// HTTP status for a CONNECT that ended this way (200, 403, 502, 504, 405, 400, 407).
unsigned to_http_status(outcome o) noexcept;
/// The outcome an HTTP refusal of a client's request stands for (405, 407, 403; else malformed).
outcome outcome_of_http_refusal(unsigned status) noexcept;

/// A failed resolve or connect, as an outcome.
outcome outcome_of_connect_error(const boost::system::error_code& ec) noexcept;

}  // namespace edgerelay::proxy
