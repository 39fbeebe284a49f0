// A connected loopback pair for relay tests: `near` goes to the relay, `far` is driven with
// blocking calls.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

struct leg {
  explicit leg(net::io_context& ioc) : near(ioc), far(ioc) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    far.connect(acceptor.local_endpoint());
    acceptor.accept(near);
    near.non_blocking(true);
  }
  tcp::socket near;
  tcp::socket far;
};

}  // namespace edgerelay::proxy
