// SOCKS5 and SOCKS4a hops: the client codecs of socks/ driven over the stream.
#include <boost/asio/ip/address.hpp>

#include "proxy/outbound/hops/hop.hpp"
#include "proxy/outbound/hops/hop_io.hpp"
#include "socks/socks4_client_codec.hpp"
#include "socks/socks5_client_codec.hpp"

namespace edgerelay::proxy::hops {
namespace {

socks::target_address socks_target(const hop_target& next) {
  socks::target_address t;
  t.port = next.port;
  if (!next.address) {
    t.host = next.host;
  } else if (next.address->is_v4()) {
    t.host = next.address->to_v4().to_bytes();
  } else {
    t.host = next.address->to_v6().to_bytes();
  }
  return t;
}

hop_result from_failure(const socks::client_step::failed& f) {
  switch (f.why) {
    case socks::client_failure::refused: return detail::failure(hop_outcome::refused, f.code);
    case socks::client_failure::auth_rejected:
    case socks::client_failure::auth_required: return detail::failure(hop_outcome::auth_failed, f.code);
    case socks::client_failure::protocol: break;
  }
  return detail::failure(hop_outcome::protocol_error, f.code);
}

/// Runs a socks client codec to its end: write what it says, read exactly what it wants.
template <class Client>
net::awaitable<hop_result> drive(tunnel::client_stream& stream, Client& client, phase_deadline& dl) {
  std::vector<std::uint8_t> out = client.start();
  if (out.empty()) {
    co_return detail::failure(hop_outcome::bad_target);
  }
  std::vector<std::uint8_t> in;
  bool read_next = false;
  for (;;) {
    if (!out.empty()) {
      const error_code wec = co_await detail::write_all(stream, out, dl);
      if (wec) {
        co_return detail::io_failure(wec, dl);
      }
      out.clear();
    }
    in.clear();
    if (read_next) {
      const error_code rec = co_await detail::read_exactly(stream, in, client.wanted(), dl);
      if (rec) {
        co_return detail::io_failure(rec, dl);
      }
    }
    read_next = true;
    socks::client_step_t step = client.feed(in);
    if (auto* send = std::get_if<socks::client_step::send>(&step)) {
      out = std::move(send->bytes);
      read_next = false;  // what answers it may already be buffered: feed({}) first
    } else if (const auto* done = std::get_if<socks::client_step::connected>(&step)) {
      hop_result r;
      r.result = hop_outcome::connected;
      if (done->bound) {
        if (const auto* v4 = std::get_if<socks::ipv4_bytes>(&*done->bound)) {
          r.bound = net::ip::address_v4(*v4);
        } else {
          r.bound = net::ip::address_v6(std::get<socks::ipv6_bytes>(*done->bound));
        }
      }
      r.bound_port = done->bound_port;
      co_return r;
    } else if (const auto* failed = std::get_if<socks::client_step::failed>(&step)) {
      co_return from_failure(*failed);
    }
  }
}

}  // namespace

net::awaitable<hop_result> socks5_hop(tunnel::client_stream& stream, const hop_description& hop, const hop_target& next,
                                      phase_deadline& dl) {
  socks::socks5_client client({hop.credentials.user, hop.credentials.password}, socks_target(next));
  co_return co_await drive(stream, client, dl);
}

net::awaitable<hop_result> socks4a_hop(tunnel::client_stream& stream, const hop_description& hop,
                                       const hop_target& next, phase_deadline& dl) {
  socks::socks4_client client(socks_target(next), hop.credentials.user);
  co_return co_await drive(stream, client, dl);
}

}  // namespace edgerelay::proxy::hops
