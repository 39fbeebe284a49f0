// The hop vocabulary, the shared I/O and the dispatch on the kind.
#include "proxy/outbound/hops/hop.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "proxy/core/endpoint.hpp"
#include "proxy/outbound/hops/hop_io.hpp"

namespace edgerelay::proxy::hops {

std::string_view to_string(hop_kind k) noexcept {
  switch (k) {
    case hop_kind::socks5: return "socks5";
    case hop_kind::socks4a: return "socks4a";
    case hop_kind::http_connect: return "http";
    case hop_kind::https_connect: return "https";
  }
  return "?";
}

std::string to_string(const hop_target& t) {
  if (t.address) {
    return proxy::to_string(tcp::endpoint(*t.address, t.port));
  }
  return t.host + ":" + std::to_string(t.port);
}

namespace {

std::string_view detail_of(hop_outcome o) noexcept {
  switch (o) {
    case hop_outcome::connected: return "";
    case hop_outcome::refused: return "upstream_refused";
    case hop_outcome::auth_failed: return "upstream_auth";
    case hop_outcome::proxy_auth_required: return "upstream_407";
    case hop_outcome::timeout: return "upstream_timeout";
    case hop_outcome::protocol_error: return "upstream_protocol";
    case hop_outcome::gone: return "upstream_gone";
    case hop_outcome::tls_failed: return "upstream_tls";
    case hop_outcome::bad_target: return "upstream_bad_target";
  }
  return "upstream_protocol";
}

}  // namespace

outcome outcome_of(const hop_result& r) noexcept {
  switch (r.result) {
    case hop_outcome::connected: return outcome::success;
    case hop_outcome::timeout: return outcome::connect_timeout;
    case hop_outcome::bad_target: return outcome::address_type_not_supported;
    case hop_outcome::refused: break;
    default: return outcome::general_failure;
  }
  // A refusal: SOCKS5 REP values and SOCKS4 5B, or an HTTP status.
  if (r.code >= 100) {
    switch (r.code) {
      case 403: return outcome::denied;
      case 502:
      case 503: return outcome::host_unreachable;
      case 504: return outcome::connect_timeout;
      default: return outcome::general_failure;
    }
  }
  switch (r.code) {
    case 0x02: return outcome::denied;
    case 0x03: return outcome::network_unreachable;
    case 0x04: return outcome::host_unreachable;
    case 0x05: return outcome::connection_refused;
    case 0x06: return outcome::connect_timeout;
    case 0x08: return outcome::address_type_not_supported;
    case 0x5B: return outcome::connection_refused;
    default: return outcome::general_failure;
  }
}

namespace detail {

hop_result failure(hop_outcome o, unsigned code) {
  hop_result r;
  r.result = o;
  r.detail = detail_of(o);
  r.code = code;
  return r;
}

hop_result io_failure(const error_code& ec, const phase_deadline& dl) {
  if (dl.expired() || ec == net::error::operation_aborted) {
    return failure(hop_outcome::timeout);
  }
  return failure(hop_outcome::gone);
}

net::awaitable<error_code> read_exactly(tunnel::client_stream& stream, std::vector<std::uint8_t>& into, std::size_t n,
                                        phase_deadline& dl) {
  into.resize(n);
  auto [ec, got] = co_await net::async_read(stream, net::buffer(into.data(), n), dl.token());
  into.resize(got);
  co_return ec;
}

net::awaitable<error_code> write_all(tunnel::client_stream& stream, std::span<const std::uint8_t> bytes,
                                     phase_deadline& dl) {
  auto [ec, written] = co_await net::async_write(stream, net::buffer(bytes.data(), bytes.size()), dl.token());
  co_return ec;
}

}  // namespace detail

net::awaitable<hop_result> traverse(tunnel::client_stream& stream, const hop_description& hop, const hop_target& next,
                                    phase_deadline& dl) {
  switch (hop.kind) {
    case hop_kind::socks5: co_return co_await socks5_hop(stream, hop, next, dl);
    case hop_kind::socks4a: co_return co_await socks4a_hop(stream, hop, next, dl);
    case hop_kind::http_connect: co_return co_await connect_hop(stream, hop, next, dl);
    case hop_kind::https_connect: co_return co_await https_connect_hop(stream, hop, next, dl);
  }
  co_return detail::failure(hop_outcome::protocol_error);
}

}  // namespace edgerelay::proxy::hops
