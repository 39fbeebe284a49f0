// One non-template stream for a session leg that is plain TCP or TLS (docs/architecture.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <openssl/types.h>

namespace boost::asio::ssl {
class context;
}

namespace edgerelay::tunnel {

/// A session leg over a tcp::socket, optionally upgraded in place to TLS. Session code (and
/// Beast, and net::async_read/async_write) runs over it without being templated on the stream
/// type; every TLS instantiation lives in client_stream.cpp, so it is compiled once.
///
/// It is an AsyncReadStream and AsyncWriteStream. Handlers keep their executor, allocator and
/// cancellation slot, so a deadline can cancel a pending read or write.
///
/// After a cancelled or failed TLS operation (read, write, handshake or shutdown) the TLS state
/// is undefined; only close() and destruction are allowed (beast#1986). Plain TCP has no such
/// restriction.
///
/// @par Thread Safety
/// Not thread-safe: use it from the one thread (worker) that owns the session. At most one read
/// and one write may be pending at a time, as for a socket.
class client_stream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using handler_type = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

  /// Takes a connected socket. Plain until start_tls() or connect_tls().
  explicit client_stream(boost::asio::ip::tcp::socket socket);
  ~client_stream();
  client_stream(client_stream&&) noexcept;
  client_stream& operator=(client_stream&&) noexcept;
  client_stream(const client_stream&) = delete;
  client_stream& operator=(const client_stream&) = delete;

  /// Runs the TLS server handshake on the socket, first feeding it `already_read`: bytes the
  /// caller already took from the socket to detect TLS (a first byte 0x16). The caller keeps
  /// those bytes and `context` alive until the returned awaitable has been awaited (after that
  /// the SSL object holds its own reference to the SSL_CTX). Returns the handshake's
  /// error; on error the stream is unusable (close it) and tls_failure_reason() explains it.
  /// Calling it twice gives boost::asio::error::already_open.
  /// `cancel` (optional) is bound to the handshake, so a deadline can cut it short.
  boost::asio::awaitable<boost::system::error_code> start_tls(boost::asio::ssl::context& context,
                                                              std::span<const std::uint8_t> already_read,
                                                              boost::asio::cancellation_slot cancel = {});

  /// Runs the TLS client handshake (for a backend with `tls`), after prepare_client_ssl() with
  /// `server_name`, so the backend certificate must verify and match that name (an empty name
  /// gives boost::asio::error::invalid_argument). Same error and lifetime rules as start_tls().
  boost::asio::awaitable<boost::system::error_code> connect_tls(boost::asio::ssl::context& context,
                                                                std::string server_name,
                                                                boost::asio::cancellation_slot cancel = {});

  /// Reads at least one byte into the first buffer of `buffers`. Completion signature
  /// void(error_code, std::size_t); net::error::eof when the client closed (TCP FIN, or TLS
  /// close_notify); ssl::error::stream_truncated when a TLS client closed TCP without close_notify.
  template <typename MutableBufferSequence, typename Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(initiate_read{this}, token,
                                                                                            first_mutable(buffers));
  }

  /// Writes at least one byte of the first buffer of `buffers`; same signature as the read.
  template <typename ConstBufferSequence, typename Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(initiate_write{this}, token,
                                                                                            first_const(buffers));
  }

  /// Ends the send direction and keeps the receive direction open (half-close): TLS sends
  /// close_notify then TCP FIN; plain TCP sends FIN. The TLS flush is bounded by `limit`: if the
  /// peer does not take the bytes in time the result is net::error::timed_out and the stream
  /// must be closed. No write may be pending. Nothing may be written afterwards.
  boost::asio::awaitable<boost::system::error_code> shutdown_send(
      std::chrono::milliseconds limit = std::chrono::milliseconds(5000));

  /// True once start_tls() or connect_tls() has been called (even if its handshake failed).
  bool is_tls() const noexcept;

  /// The TCP socket under the stream (for endpoints, options and close).
  boost::asio::ip::tcp::socket& socket() noexcept;

  /// The OpenSSL handle for tls_context.hpp's peer_identity(), negotiated() and
  /// tls_failure_reason(); nullptr for a plain stream.
  SSL* ssl() noexcept;

  /// Closes the socket; pending operations complete with operation_aborted. Never throws.
  void close() noexcept;

  executor_type get_executor() noexcept;

 private:
  struct tls_state;  // ssl::stream<tcp::socket>, defined in client_stream.cpp

  struct initiate_read {
    client_stream* self;
    template <typename Handler>
    void operator()(Handler&& handler, boost::asio::mutable_buffer b) const {
      self->read_some_impl(b, handler_type(std::forward<Handler>(handler)));
    }
  };
  struct initiate_write {
    client_stream* self;
    template <typename Handler>
    void operator()(Handler&& handler, boost::asio::const_buffer b) const {
      self->write_some_impl(b, handler_type(std::forward<Handler>(handler)));
    }
  };

  // Handling only the first non-empty buffer is allowed for *_some operations.
  template <typename Buffer, typename Sequence>
  static Buffer first_buffer(const Sequence& buffers) {
    const auto end = boost::asio::buffer_sequence_end(buffers);
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != end; ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }
  template <typename Sequence>
  static boost::asio::mutable_buffer first_mutable(const Sequence& buffers) {
    return first_buffer<boost::asio::mutable_buffer>(buffers);
  }
  template <typename Sequence>
  static boost::asio::const_buffer first_const(const Sequence& buffers) {
    return first_buffer<boost::asio::const_buffer>(buffers);
  }

  void read_some_impl(boost::asio::mutable_buffer b, handler_type handler);
  void write_some_impl(boost::asio::const_buffer b, handler_type handler);

  boost::asio::ip::tcp::socket socket_;  // the plain socket; moved into tls_ on upgrade
  std::unique_ptr<tls_state> tls_;
};

}  // namespace edgerelay::tunnel
