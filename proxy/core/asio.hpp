// The one place for Asio/Beast aliases and the error-code completion token used everywhere.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>

static_assert(BOOST_VERSION >= 108100, "edgerelay needs Boost 1.81 or newer");

namespace edgerelay {
namespace net = boost::asio;
using tcp = net::ip::tcp;
using udp = net::ip::udp;
using error_code = boost::system::error_code;
/// Every awaited operation returns its error code instead of throwing (no exceptions on the data path).
inline constexpr auto use_ec = net::as_tuple(net::use_awaitable);
}  // namespace edgerelay
