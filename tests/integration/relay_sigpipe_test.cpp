// The splice relay in a process that never thought of SIGPIPE: splice(2) into a socket whose peer
// has reset raises SIGPIPE (splice takes no MSG_NOSIGNAL), so relay_pools must make the process
// ignore it. This binary starts with the default disposition, which would terminate it.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/relay.hpp"
#include "proxy/relay/relay_pools.hpp"
#include "tests/integration/loopback_leg.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;

int tcp_state(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
  return info.tcpi_state;
}

TEST(RelaySigpipe, SpliceIntoAPeerThatClosedAndResetReportsResetAndTheProcessLives) {
  struct sigaction current {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &current), 0);
  if (current.sa_handler != SIG_DFL) {
    // Whatever ran before (gtest, the harness) must not make the test pass on its own.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ASSERT_EQ(::sigaction(SIGPIPE, &dfl, nullptr), 0);
  }

  net::io_context ioc;
  leg client(ioc);
  leg upstream(ioc);
  relay_pools pools;
  std::optional<relay_result> result;
  start_relay(client.near, upstream.near, pools,
              relay_options{.idle_timeout = 10s, .fin_timeout = 10s, .use_splice = true}, [&](relay_result r) {
                result = r;
                error_code ignored;
                client.near.close(ignored);
                upstream.near.close(ignored);
              });

  std::thread drive([&] {
    // The upstream finishes its side (FIN), which reaches the client: the relay is half-closed.
    upstream.far.shutdown(tcp::socket::shutdown_send);
    std::uint8_t buf[64];
    error_code ec;
    client.far.read_some(net::buffer(buf), ec);
    EXPECT_EQ(ec, net::error::eof);
    // Then it goes away with a reset, as a crashed server does. The relay's socket is in
    // CLOSE_WAIT, where a reset leaves EPIPE: its next splice into it raises SIGPIPE.
    upstream.far.set_option(net::socket_base::linger(true, 0));
    upstream.far.close();
    const int fd = upstream.near.native_handle();
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (tcp_state(fd) != TCP_CLOSE && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(tcp_state(fd), TCP_CLOSE) << "the reset did not arrive";
    // The client goes on sending; the relay splices that into the reset socket.
    const std::vector<std::uint8_t> data(4096, 0x5a);
    for (int i = 0; i < 8; ++i) {
      net::write(client.far, net::buffer(data), ec);
      if (ec) break;
      std::this_thread::sleep_for(5ms);
    }
  });

  for (int turns = 0; !result && turns < 1000; ++turns) ioc.run_for(10ms);
  drive.join();

  ASSERT_TRUE(result.has_value()) << "the relay did not end";
  EXPECT_EQ(result->end, relay_end::reset);
  EXPECT_EQ(result->error, error_code(EPIPE, boost::system::system_category())) << result->error.message();
  EXPECT_EQ(result->bytes_up, 0u);  // nothing reached a peer that was gone
}

}  // namespace
}  // namespace edgerelay::proxy
