// HTTP CONNECT hops, plain and inside TLS: tunnel/connect_client_codec.hpp driven over the stream.
#include <boost/asio/ssl/context.hpp>

#include "proxy/outbound/hops/hop.hpp"
#include "proxy/outbound/hops/hop_io.hpp"
#include "tunnel/connect_client_codec.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::proxy::hops {

net::awaitable<hop_result> connect_hop(tunnel::client_stream& stream, const hop_description& hop,
                                       const hop_target& next, phase_deadline& dl) {
  const std::vector<std::uint8_t> request =
      tunnel::connect_request(to_string(next), hop.credentials.user, hop.credentials.password);
  if (request.empty()) {
    co_return detail::failure(hop_outcome::bad_target);
  }
  if (const error_code ec = co_await detail::write_all(stream, request, dl); ec) {
    co_return detail::io_failure(ec, dl);
  }
  tunnel::connect_response_reader reader;
  std::vector<std::uint8_t> in;
  for (;;) {
    const error_code ec = co_await detail::read_exactly(stream, in, reader.wanted(), dl);
    if (ec) {
      co_return detail::io_failure(ec, dl);
    }
    const tunnel::connect_result r = reader.feed(in);
    if (std::holds_alternative<tunnel::connect_step::need_more>(r)) {
      continue;
    }
    if (std::holds_alternative<tunnel::connect_step::established>(r)) {
      hop_result ok;
      ok.result = hop_outcome::connected;
      ok.code = std::get<tunnel::connect_step::established>(r).response.status;
      co_return ok;
    }
    if (const auto* refused = std::get_if<tunnel::connect_step::refused>(&r)) {
      const unsigned status = refused->response.status;
      co_return detail::failure(status == 407 ? hop_outcome::proxy_auth_required : hop_outcome::refused, status);
    }
    co_return detail::failure(hop_outcome::protocol_error);
  }
}

net::awaitable<hop_result> https_connect_hop(tunnel::client_stream& stream, const hop_description& hop,
                                             const hop_target& next, phase_deadline& dl) {
  if (hop.tls.context == nullptr) {
    hop_result r = detail::failure(hop_outcome::tls_failed);
    r.tls_error = "no TLS context for the proxy";
    co_return r;
  }
  const error_code ec = co_await stream.connect_tls(*hop.tls.context, hop.tls.server_name, dl.slot());
  if (ec) {
    hop_result r = detail::failure(dl.expired() ? hop_outcome::timeout : hop_outcome::tls_failed);
    r.tls_error =
        ec == net::error::operation_aborted ? "handshake timed out" : tunnel::tls_failure_reason(stream.ssl(), ec);
    co_return r;
  }
  co_return co_await connect_hop(stream, hop, next, dl);
}

}  // namespace edgerelay::proxy::hops
