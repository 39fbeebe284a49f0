// client_stream over real loopback sockets: start_tls with detected bytes, bulk data, half-close,
// cancellation and failures.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "tests/support/test_certs.hpp"
#include "tunnel/tls/client_stream.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::tunnel {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using namespace net::experimental::awaitable_operators;
constexpr auto use_ec = net::as_tuple(net::use_awaitable);

constexpr std::uint64_t bulk_bytes = 64ull * 1024 * 1024;

std::uint8_t pattern(std::uint64_t i, std::uint8_t seed) {
  return static_cast<std::uint8_t>(((i * 0x9E3779B1u) >> 24) ^ i ^ seed);
}

/// A connected loopback TCP pair (server side accepted, client side connected).
struct tcp_pair {
  tcp::socket server;
  tcp::socket client;
};

tcp_pair connect_pair(net::io_context& io) {
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  tcp::socket server = acceptor.accept();
  return {std::move(server), std::move(client)};
}

net::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  net::steady_timer t(co_await net::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(use_ec);
}

/// Runs `a` and `b` on `io` (bounded) and returns their results ("ok" or what went wrong).
template <typename A, typename B>
std::pair<std::string, std::string> run_both(net::io_context& io, A a, B b) {
  std::string ra = "did not finish";
  std::string rb = "did not finish";
  net::co_spawn(io, std::move(a), [&](std::exception_ptr e, std::string r) { ra = e ? "exception" : r; });
  net::co_spawn(io, std::move(b), [&](std::exception_ptr e, std::string r) { rb = e ? "exception" : r; });
  io.run_for(60s);
  return {ra, rb};
}

/// Both ends of a loopback TCP connection as client_streams on one io_context.
struct stream_pair {
  net::io_context io;
  tcp_pair sockets = connect_pair(io);
  client_stream server{std::move(sockets.server)};
  client_stream client{std::move(sockets.client)};
  /// run_both on this pair's io_context.
  template <typename A, typename B>
  std::pair<std::string, std::string> run(A a, B b) {
    return run_both(io, std::move(a), std::move(b));
  }
};

class tls_stream_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& c = test::get_test_certs();
    ASSERT_EQ(c.error, "");
    config::tls_files f;
    f.cert = c.server.cert;
    f.key = c.server.key;
    auto s = make_server_context(f, true);
    ASSERT_EQ(s.error, "");
    server_ctx_ = s.context;
    auto cl = make_client_context({c.ca, "gw.test"});
    ASSERT_EQ(cl.error, "");
    client_ctx_ = cl.context;
  }
  std::shared_ptr<ssl::context> server_ctx_;
  std::shared_ptr<ssl::context> client_ctx_;
};

// ---- coroutines of the tests (named functions, parameters by value) ----------------------------

/// Server side: reads the first bytes itself as protocol detection would, then start_tls with them.
net::awaitable<std::string> accept_tls(client_stream* s, ssl::context* ctx, std::size_t peek) {
  std::array<std::uint8_t, 16> first{};
  auto [ec, n] = co_await net::async_read(s->socket(), net::buffer(first.data(), peek), use_ec);
  if (ec) co_return "reading the first bytes: " + ec.message();
  if (first[0] != 0x16) co_return "first byte is not a TLS handshake record";
  ec = co_await s->start_tls(*ctx, std::span<const std::uint8_t>(first.data(), n));
  if (ec) co_return "start_tls: " + tls_failure_reason(s->ssl(), ec);
  co_return "ok";
}

net::awaitable<std::string> dial_tls(client_stream* s, ssl::context* ctx, std::string name) {
  const error_code ec = co_await s->connect_tls(*ctx, name);
  if (ec) co_return "connect_tls: " + tls_failure_reason(s->ssl(), ec);
  co_return "ok";
}

net::awaitable<std::string> send_pattern(client_stream* s, std::uint64_t total, std::uint8_t seed) {
  std::vector<std::uint8_t> buf(64 * 1024);
  for (std::uint64_t off = 0; off < total;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - off));
    for (std::size_t i = 0; i < n; ++i) buf[i] = pattern(off + i, seed);
    auto [ec, written] = co_await net::async_write(*s, net::buffer(buf.data(), n), use_ec);
    if (ec) co_return "write at " + std::to_string(off) + ": " + ec.message();
    off += written;
  }
  co_return "ok";
}

net::awaitable<std::string> expect_pattern(client_stream* s, std::uint64_t total, std::uint8_t seed) {
  std::vector<std::uint8_t> buf(16 * 1024);
  for (std::uint64_t off = 0; off < total;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - off));
    auto [ec, n] = co_await s->async_read_some(net::buffer(buf.data(), want), use_ec);
    if (ec) co_return "read at " + std::to_string(off) + ": " + ec.message();
    for (std::size_t i = 0; i < n; ++i) {
      if (buf[i] != pattern(off + i, seed)) co_return "mismatch at byte " + std::to_string(off + i);
    }
    off += n;
  }
  co_return "ok";
}

/// Expects the next read to end with net::error::eof (for TLS: a close_notify, not a bare FIN).
net::awaitable<std::string> expect_eof(client_stream* s) {
  std::array<char, 64> buf{};
  auto [ec, n] = co_await s->async_read_some(net::buffer(buf), use_ec);
  if (ec == net::error::eof) co_return "ok";
  co_return "expected eof, got " + (ec ? ec.message() : std::to_string(n) + " bytes");
}

net::awaitable<std::string> expect_text(client_stream* s, std::string text) {
  std::string got(text.size(), '\0');
  auto [ec, n] = co_await net::async_read(*s, net::buffer(got), use_ec);
  if (ec) co_return "read: " + ec.message();
  if (got != text) co_return "got '" + got + "'";
  co_return "ok";
}

net::awaitable<std::string> send_text(client_stream* s, std::string text) {
  auto [ec, n] = co_await net::async_write(*s, net::buffer(text), use_ec);
  if (ec) co_return "write: " + ec.message();
  co_return "ok";
}

std::string first_failure(std::initializer_list<std::string> results) {
  for (const auto& r : results) {
    if (r != "ok") return r;
  }
  return "ok";
}

net::awaitable<std::string> server_bulk(client_stream* s, ssl::context* ctx) {
  if (auto r = co_await accept_tls(s, ctx, 11); r != "ok") co_return r;
  const auto info = negotiated(s->ssl());
  if (info.version != "TLSv1.3" || info.server_name != "gw.test")
    co_return "negotiated " + info.version + " " + info.server_name;
  auto [sent, received] = co_await (send_pattern(s, bulk_bytes, 1) && expect_pattern(s, bulk_bytes, 2));
  if (auto r = first_failure({sent, received}); r != "ok") co_return r;
  if (const auto ec = co_await s->shutdown_send(); ec) co_return "shutdown_send: " + ec.message();
  co_return co_await expect_eof(s);
}

net::awaitable<std::string> client_bulk(client_stream* s, ssl::context* ctx) {
  if (auto r = co_await dial_tls(s, ctx, "gw.test"); r != "ok") co_return r;
  auto [sent, received] = co_await (send_pattern(s, bulk_bytes, 2) && expect_pattern(s, bulk_bytes, 1));
  if (auto r = first_failure({sent, received}); r != "ok") co_return r;
  if (const auto ec = co_await s->shutdown_send(); ec) co_return "shutdown_send: " + ec.message();
  co_return co_await expect_eof(s);
}

net::awaitable<std::string> shutdown_result(client_stream* s) {
  const error_code ec = co_await s->shutdown_send();
  co_return ec ? "shutdown_send: " + ec.message() : "ok";
}

// Half-close: the server ends its sending side; the client sees the end, then still sends.
net::awaitable<std::string> server_half_close(client_stream* s, ssl::context* ctx) {
  if (ctx != nullptr) {
    if (auto r = co_await accept_tls(s, ctx, 5); r != "ok") co_return r;
  }
  if (auto r = co_await send_text(s, "last words"); r != "ok") co_return r;
  // As in a relay: the read of the other direction is pending while the send side is shut.
  auto [reply, shut] = co_await (expect_text(s, "reply after half-close") && shutdown_result(s));
  if (auto r = first_failure({shut, reply}); r != "ok") co_return r;
  co_return co_await expect_eof(s);
}

net::awaitable<std::string> client_half_close(client_stream* s, ssl::context* ctx) {
  if (ctx != nullptr) {
    if (auto r = co_await dial_tls(s, ctx, "gw.test"); r != "ok") co_return r;
  }
  if (auto r = co_await expect_text(s, "last words"); r != "ok") co_return r;
  if (auto r = co_await expect_eof(s); r != "ok") co_return r;
  co_await sleep_for(20ms);  // the server's read is pending by now: data must still reach it
  if (auto r = co_await send_text(s, "reply after half-close"); r != "ok") co_return r;
  if (const auto ec = co_await s->shutdown_send(); ec) co_return "shutdown_send: " + ec.message();
  co_return "ok";
}

/// A pending read cancelled through its cancellation slot, then through the deadline pattern
/// `op || timer` of docs/architecture.md
net::awaitable<std::string> server_cancelled_read(client_stream* s, ssl::context* ctx) {
  if (ctx != nullptr) {
    if (auto r = co_await accept_tls(s, ctx, 5); r != "ok") co_return r;
  }
  std::array<char, 64> buf{};
  net::cancellation_signal signal;
  std::optional<error_code> result;
  s->async_read_some(net::buffer(buf), net::bind_cancellation_slot(
                                           signal.slot(), [&result](error_code ec, std::size_t) { result = ec; }));
  co_await sleep_for(50ms);
  if (result) co_return "read completed before the cancellation: " + result->message();
  signal.emit(net::cancellation_type::terminal);
  for (int i = 0; i < 100 && !result; ++i) co_await sleep_for(5ms);
  if (!result) co_return "cancelled read did not complete";
  if (*result != net::error::operation_aborted) co_return "cancelled read gave " + result->message();

  if (!s->is_tls()) {  // plain TCP stays usable after a cancelled read; TLS must be closed
    net::steady_timer deadline(co_await net::this_coro::executor);
    deadline.expires_after(50ms);
    auto winner = co_await (s->async_read_some(net::buffer(buf), use_ec) || deadline.async_wait(use_ec));
    if (winner.index() != 1) co_return "the read beat the deadline";
  }
  s->close();
  co_return "ok";
}

net::awaitable<std::string> client_idle(client_stream* s, ssl::context* ctx) {
  if (ctx != nullptr) {
    if (auto r = co_await dial_tls(s, ctx, "gw.test"); r != "ok") co_return r;
  }
  std::array<char, 64> buf{};
  auto [ec, n] = co_await s->async_read_some(net::buffer(buf), use_ec);  // ends when the server closes
  co_return ec ? "ok" : "unexpected data";
}

TEST_F(tls_stream_test, start_tls_with_bytes_already_read_then_64_mib_each_way) {
  stream_pair p;
  EXPECT_FALSE(p.server.is_tls());
  EXPECT_EQ(p.server.ssl(), nullptr);
  const auto started = std::chrono::steady_clock::now();
  auto [s, c] = p.run(server_bulk(&p.server, server_ctx_.get()), client_bulk(&p.client, client_ctx_.get()));
  EXPECT_EQ(s, "ok");
  EXPECT_EQ(c, "ok");
  EXPECT_TRUE(p.server.is_tls());
  EXPECT_NE(p.server.ssl(), nullptr);
  std::printf(
      "128 MiB through TLS in %lld ms\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()));
}

TEST_F(tls_stream_test, tls_shutdown_send_is_a_half_close) {
  stream_pair p;
  auto [s, c] = p.run(server_half_close(&p.server, server_ctx_.get()), client_half_close(&p.client, client_ctx_.get()));
  EXPECT_EQ(s, "ok");
  EXPECT_EQ(c, "ok");
}

TEST_F(tls_stream_test, tls12_shutdown_send_is_a_half_close) {
  SSL_CTX_set_max_proto_version(client_ctx_->native_handle(), TLS1_2_VERSION);
  stream_pair p;
  auto [s, c] = p.run(server_half_close(&p.server, server_ctx_.get()), client_half_close(&p.client, client_ctx_.get()));
  EXPECT_EQ(s, "ok");
  EXPECT_EQ(c, "ok");
  EXPECT_EQ(negotiated(p.server.ssl()).version, "TLSv1.2");
}

TEST_F(tls_stream_test, plain_shutdown_send_is_a_half_close) {
  stream_pair p;
  auto [s, c] = p.run(server_half_close(&p.server, nullptr), client_half_close(&p.client, nullptr));
  EXPECT_EQ(s, "ok");
  EXPECT_EQ(c, "ok");
}

TEST_F(tls_stream_test, pending_tls_read_is_cancelled_through_its_slot) {
  stream_pair p;
  auto [s, c] = p.run(server_cancelled_read(&p.server, server_ctx_.get()), client_idle(&p.client, client_ctx_.get()));
  EXPECT_EQ(s, "ok");
  EXPECT_EQ(c, "ok");
}

TEST_F(tls_stream_test, pending_plain_read_is_cancelled_through_its_slot) {
  stream_pair p;
  auto [s, c] = p.run(server_cancelled_read(&p.server, nullptr), client_idle(&p.client, nullptr));
  EXPECT_EQ(s, "ok");
  EXPECT_EQ(c, "ok");
}

// ---- failures ----------------------------------------------------------------------------------

net::awaitable<std::string> server_expects_failure(client_stream* s, ssl::context* ctx) {
  std::array<std::uint8_t, 5> first{};
  auto [ec, n] = co_await net::async_read(s->socket(), net::buffer(first), use_ec);
  if (ec) co_return "reading the first bytes: " + ec.message();
  ec = co_await s->start_tls(*ctx, std::span<const std::uint8_t>(first.data(), n));
  s->close();
  if (!ec) co_return "handshake succeeded";
  co_return "failed: " + tls_failure_reason(s->ssl(), ec);
}

net::awaitable<std::string> plaintext_client(tcp::socket* s) {
  const std::string request = "GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n";
  auto [ec, n] = co_await net::async_write(*s, net::buffer(request), use_ec);
  if (ec) co_return "write: " + ec.message();
  std::array<char, 256> buf{};
  for (int i = 0; i < 10; ++i) {  // an alert, then the end
    auto [rec, got] = co_await s->async_read_some(net::buffer(buf), use_ec);
    if (rec) co_return "ok";
  }
  co_return "connection stayed open";
}

TEST_F(tls_stream_test, plaintext_client_against_start_tls_fails_cleanly) {
  net::io_context io;
  auto [server_socket, client_socket] = connect_pair(io);
  client_stream server(std::move(server_socket));
  auto [s, c] = run_both(io, server_expects_failure(&server, server_ctx_.get()), plaintext_client(&client_socket));
  EXPECT_EQ(s, "failed: http request");
  EXPECT_EQ(c, "ok");
}

net::awaitable<std::string> truncated_client_hello(tcp::socket* s) {
  // A handshake record header announcing 512 bytes, then the connection ends.
  const std::array<std::uint8_t, 8> partial{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
  auto [ec, n] = co_await net::async_write(*s, net::buffer(partial), use_ec);
  s->shutdown(tcp::socket::shutdown_send, ec);
  co_return "ok";
}

TEST_F(tls_stream_test, client_closing_mid_handshake_is_reported) {
  net::io_context io;
  auto [server_socket, client_socket] = connect_pair(io);
  client_stream server(std::move(server_socket));
  auto [s, c] =
      run_both(io, server_expects_failure(&server, server_ctx_.get()), truncated_client_hello(&client_socket));
  EXPECT_EQ(s, "failed: peer closed the connection during the handshake");
  EXPECT_EQ(c, "ok");
}

net::awaitable<std::string> dial_expecting_failure(client_stream* s, ssl::context* ctx, std::string name) {
  const error_code ec = co_await s->connect_tls(*ctx, name);
  s->close();
  if (!ec) co_return "handshake succeeded";
  co_return "failed: " + tls_failure_reason(s->ssl(), ec);
}

net::awaitable<std::string> server_any_outcome(client_stream* s, ssl::context* ctx) {
  const error_code ec = co_await s->start_tls(*ctx, {});
  s->close();
  co_return ec ? "ok" : "handshake succeeded";
}

TEST_F(tls_stream_test, backend_with_expired_or_misnamed_certificate_is_refused) {
  const auto& certs = test::get_test_certs();
  config::tls_files expired;
  expired.cert = certs.expired.cert;
  expired.key = certs.expired.key;
  auto expired_ctx = make_server_context(expired, false).context;
  ASSERT_TRUE(expired_ctx);
  struct dial_case {
    ssl::context* server;
    const char* name;
    const char* reason;
  };
  for (const auto& d :
       {dial_case{expired_ctx.get(), "gw.test", "failed: certificate verify failed: certificate has expired"},
        dial_case{server_ctx_.get(), "wrong.test", "failed: certificate verify failed: hostname mismatch"}}) {
    stream_pair p;
    auto [s, c] =
        p.run(server_any_outcome(&p.server, d.server), dial_expecting_failure(&p.client, client_ctx_.get(), d.name));
    EXPECT_EQ(s, "ok") << d.name;
    EXPECT_EQ(c, d.reason) << d.name;
  }
}

}  // namespace
}  // namespace edgerelay::tunnel
