// client_stream: the plain/TLS dispatch; the only translation unit that instantiates ssl::stream.
#include "tunnel/tls/client_stream.hpp"

#include <tuple>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/ssl.h>

#include "tunnel/tls/half_close.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::tunnel {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using ssl_stream = net::ssl::stream<tcp::socket>;
constexpr auto use_ec = net::as_tuple(net::use_awaitable);

/// Sends close_notify without waiting for the peer's: TLS 1.3 (RFC 8446 6.1) and OpenSSL 3 allow
/// reading after it, which is the half-close a relay needs. Asio's async_shutdown would instead
/// wait for the peer's close_notify; marking it received just around the synchronous first step
/// makes SSL_shutdown return after queueing ours, and async_shutdown then only flushes it.
/// The mark is removed before any other handler can run SSL_read on this stream (the engine step
/// runs inside the initiating call), so reads keep working.
struct initiate_close_notify {
  template <typename Handler>
  void operator()(Handler&& handler, ssl_stream* s) const {
    SSL* ssl = s->native_handle();
    const int before = SSL_get_shutdown(ssl);
    SSL_set_shutdown(ssl, before | SSL_RECEIVED_SHUTDOWN);
    s->async_shutdown(std::forward<Handler>(handler));
    SSL_set_shutdown(ssl, (SSL_get_shutdown(ssl) & ~SSL_RECEIVED_SHUTDOWN) | (before & SSL_RECEIVED_SHUTDOWN));
  }
};

net::awaitable<error_code> send_close_notify(ssl_stream* s) {
  auto [ec] = co_await net::async_initiate<decltype(use_ec), void(error_code)>(initiate_close_notify{}, use_ec, s);
  co_return ec;
}

/// The SSL ex_data slot that marks a stream whose half-close sends no TCP FIN (half_close.hpp);
/// kept on the SSL object so client_stream's layout does not change.
int no_fin_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

net::awaitable<error_code> wait_until(net::steady_timer* timer) {
  auto [ec] = co_await timer->async_wait(use_ec);
  co_return ec;
}

}  // namespace

struct client_stream::tls_state {
  tls_state(tcp::socket s, net::ssl::context& c) : stream(std::move(s), c) {}
  ssl_stream stream;
};

client_stream::client_stream(tcp::socket socket) : socket_(std::move(socket)) {}
client_stream::~client_stream() = default;
client_stream::client_stream(client_stream&&) noexcept = default;
client_stream& client_stream::operator=(client_stream&&) noexcept = default;

net::awaitable<error_code> client_stream::start_tls(net::ssl::context& context,
                                                    std::span<const std::uint8_t> already_read,
                                                    net::cancellation_slot cancel) {
  if (tls_) co_return net::error::already_open;
  tls_ = std::make_unique<tls_state>(std::move(socket_), context);
  const auto input = net::buffer(already_read.data(), already_read.size());
  // An unconnected slot must not replace the awaiting coroutine's own (operator|| cancels through it).
  // Each co_await is its own statement: GCC 12 miscompiles one inside a conditional expression.
  if (cancel.is_connected()) {
    auto [ec, used] = co_await tls_->stream.async_handshake(net::ssl::stream_base::server, input,
                                                            net::bind_cancellation_slot(cancel, use_ec));
    co_return ec;
  }
  auto [ec, used] = co_await tls_->stream.async_handshake(net::ssl::stream_base::server, input, use_ec);
  co_return ec;
}

net::awaitable<error_code> client_stream::connect_tls(net::ssl::context& context, std::string server_name,
                                                      net::cancellation_slot cancel) {
  if (tls_) co_return net::error::already_open;
  tls_ = std::make_unique<tls_state>(std::move(socket_), context);
  if (!prepare_client_ssl(tls_->stream.native_handle(), server_name).empty()) {
    co_return net::error::invalid_argument;
  }
  if (cancel.is_connected()) {
    auto [ec] = co_await tls_->stream.async_handshake(net::ssl::stream_base::client,
                                                      net::bind_cancellation_slot(cancel, use_ec));
    co_return ec;
  }
  auto [ec] = co_await tls_->stream.async_handshake(net::ssl::stream_base::client, use_ec);
  co_return ec;
}

void client_stream::read_some_impl(net::mutable_buffer b, handler_type handler) {
  if (tls_) {
    tls_->stream.async_read_some(b, std::move(handler));
  } else {
    socket_.async_read_some(b, std::move(handler));
  }
}

void client_stream::write_some_impl(net::const_buffer b, handler_type handler) {
  if (tls_) {
    tls_->stream.async_write_some(b, std::move(handler));
  } else {
    socket_.async_write_some(b, std::move(handler));
  }
}

net::awaitable<error_code> client_stream::shutdown_send(std::chrono::milliseconds limit) {
  using namespace net::experimental::awaitable_operators;
  error_code ec;
  if (!tls_) {
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    co_return ec;
  }
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(limit);
  // Bounded: a client that stops reading must not hold the session open.
  const auto winner = co_await (send_close_notify(&tls_->stream) || wait_until(&timer));
  if (winner.index() == 1) co_return net::error::timed_out;
  ec = std::get<0>(winner);
  if (ec) co_return ec;
  // Also a TCP FIN, so the client sees the end even if it reads TCP before TLS.
  if (SSL_get_ex_data(tls_->stream.native_handle(), no_fin_index()) == nullptr) {
    tls_->stream.next_layer().shutdown(tcp::socket::shutdown_send, ec);
  }
  co_return ec;
}

bool client_stream::is_tls() const noexcept {
  return tls_ != nullptr;
}

tcp::socket& client_stream::socket() noexcept {
  return tls_ ? tls_->stream.next_layer() : socket_;
}

SSL* client_stream::ssl() noexcept {
  return tls_ ? tls_->stream.native_handle() : nullptr;
}

void client_stream::close() noexcept {
  error_code ignored;
  socket().close(ignored);
}

client_stream::executor_type client_stream::get_executor() noexcept {
  return socket().get_executor();
}

void half_close_without_fin(client_stream& stream) noexcept {
  static int marker = 0;
  if (SSL* ssl = stream.ssl()) SSL_set_ex_data(ssl, no_fin_index(), &marker);
}

}  // namespace edgerelay::tunnel
