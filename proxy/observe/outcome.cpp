// Maps outcomes and socket errors to the replies of docs/config.md.
#include "proxy/observe/outcome.hpp"

#include <boost/asio/error.hpp>

namespace edgerelay::proxy {

std::string_view to_string(outcome o) noexcept {
  switch (o) {
    case outcome::success: return "ok";
    case outcome::denied: return "denied";
    case outcome::network_unreachable: return "network_unreachable";
    case outcome::host_unreachable: return "host_unreachable";
    case outcome::connection_refused: return "refused";
    case outcome::connect_timeout: return "connect_timeout";
    case outcome::command_not_supported: return "command_not_supported";
    case outcome::address_type_not_supported: return "address_type_not_supported";
    case outcome::bad_credentials: return "bad_credentials";
    case outcome::malformed: return "malformed";
    case outcome::handshake_timeout: return "handshake_timeout";
    case outcome::tls_failed: return "tls_failed";
    case outcome::tls_required: return "tls_required";
    case outcome::backend_tls_failed: return "backend_tls_failed";
    case outcome::general_failure: return "failed";
  }
  return "failed";
}

socks::reply_code to_socks5_reply(outcome o) noexcept {
  using socks::reply_code;
  switch (o) {
    case outcome::success: return reply_code::succeeded;
    case outcome::denied: return reply_code::not_allowed;
    case outcome::network_unreachable: return reply_code::network_unreachable;
    case outcome::host_unreachable: return reply_code::host_unreachable;
    case outcome::connection_refused: return reply_code::connection_refused;
    case outcome::connect_timeout: return reply_code::ttl_expired;
    case outcome::command_not_supported: return reply_code::command_not_supported;
    case outcome::address_type_not_supported: return reply_code::address_type_not_supported;
    default: return reply_code::general_failure;
  }
}

socks::socks4_reply to_socks4_reply(outcome o) noexcept {
  switch (o) {
    case outcome::success: return socks::socks4_reply::granted;
    case outcome::bad_credentials: return socks::socks4_reply::bad_user;
    default: return socks::socks4_reply::rejected;
  }
}

unsigned to_http_status(outcome o) noexcept {
  switch (o) {
    case outcome::success: return 200;
    case outcome::denied: return 403;
    case outcome::network_unreachable:
    case outcome::host_unreachable:
    case outcome::connection_refused: return 502;
    case outcome::connect_timeout: return 504;
    case outcome::command_not_supported: return 405;
    case outcome::bad_credentials: return 407;
    case outcome::address_type_not_supported:
    case outcome::malformed: return 400;
    default: return 502;
  }
}

outcome outcome_of_http_refusal(unsigned status) noexcept {
  switch (status) {
    case 405: return outcome::command_not_supported;
    case 407: return outcome::bad_credentials;
    case 403: return outcome::denied;
    default: return outcome::malformed;
  }
}

outcome outcome_of_connect_error(const boost::system::error_code& ec) noexcept {
  namespace error = boost::asio::error;
  if (ec == error::connection_refused) {
    return outcome::connection_refused;
  }
  if (ec == error::network_unreachable || ec == error::network_down) {
    return outcome::network_unreachable;
  }
  if (ec == error::host_unreachable || ec == error::host_not_found || ec == error::host_not_found_try_again ||
      ec == error::no_data || ec == error::no_recovery) {
    return outcome::host_unreachable;
  }
  if (ec == error::timed_out || ec == error::operation_aborted) {
    return outcome::connect_timeout;
  }
  return outcome::general_failure;
}

}  // namespace edgerelay::proxy
