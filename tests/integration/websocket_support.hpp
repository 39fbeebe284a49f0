// A WebSocket tunnel client for the tests (Beast, over a loopback TCP socket), following
// docs/tunnel-protocol.md: binary messages carry the bytes, {"op":"fin"} half-closes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::testing {

namespace websocket = boost::beast::websocket;

/// One upgrade to the gateway; after it, coroutines on `io` drive the stream.
struct ws_client {
  using header_list = std::vector<std::pair<std::string, std::string>>;

  ws_client(const tcp::endpoint& gw, const std::string& target, header_list headers = {},
            std::optional<std::string> subprotocol = std::string("edgerelay.v1"))
      : ws(io) {
    ws.next_layer().connect(gw);
    ws.set_option(websocket::stream_base::decorator([headers, subprotocol](websocket::request_type& req) {
      if (subprotocol) req.set(boost::beast::http::field::sec_websocket_protocol, *subprotocol);
      for (const auto& [k, v] : headers) req.set(k, v);
    }));
    ws.read_message_max(64 * 1024 * 1024);
    ws.binary(true);
    ws.handshake(response, "gw.test", target, handshake_ec);
  }

  unsigned status() const { return response.result_int(); }
  std::string header(const std::string& name) const { return std::string(response[name]); }

  /// Runs `body` on io until it returns (bounded by `limit`); rethrows what it threw.
  void run(std::function<net::awaitable<void>()> body, std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::promise<void> done;
    auto result = done.get_future();
    net::co_spawn(io, body(), [&done](std::exception_ptr e) {
      if (e) {
        done.set_exception(e);
      } else {
        done.set_value();
      }
    });
    io.restart();
    io.run_for(limit);
    if (result.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      throw std::runtime_error("websocket test body did not finish in time");
    }
    result.get();
  }

  net::awaitable<void> send_bytes(std::vector<std::uint8_t> data, std::size_t message_size = 64 * 1024) {
    ws.binary(true);
    for (std::size_t at = 0; at < data.size(); at += message_size) {
      const std::size_t n = std::min(message_size, data.size() - at);
      co_await ws.async_write(net::buffer(data.data() + at, n), net::use_awaitable);
    }
  }
  net::awaitable<void> send_text(std::string text) {
    ws.text(true);
    co_await ws.async_write(net::buffer(text), net::use_awaitable);
    ws.binary(true);
  }
  net::awaitable<void> send_fin() { return send_text(R"({"op":"fin"})"); }

  /// What reading until the gateway's fin (or the end) gave.
  struct received {
    std::vector<std::uint8_t> bytes;
    bool fin = false;
    std::size_t largest_message = 0;
    error_code end;  ///< the error that ended the read (closed for a close frame); none after fin
  };
  /// Reads binary messages until a fin control message or an error.
  net::awaitable<received> read_until_fin(std::size_t stop_after = SIZE_MAX) {
    received r;
    for (;;) {
      boost::beast::flat_buffer buf;
      auto [ec, n] = co_await ws.async_read(buf, net::as_tuple(net::use_awaitable));
      if (ec) {
        r.end = ec;
        co_return r;
      }
      if (ws.got_text()) {
        const std::string text = boost::beast::buffers_to_string(buf.data());
        if (text == R"({"op":"fin"})") {
          r.fin = true;
          co_return r;
        }
        throw std::runtime_error("unexpected control message " + text);
      }
      r.largest_message = std::max(r.largest_message, n);
      const auto* p = static_cast<const std::uint8_t*>(buf.data().data());
      r.bytes.insert(r.bytes.end(), p, p + n);
      if (r.bytes.size() >= stop_after) co_return r;
    }
  }
  /// Reads once more and expects the gateway's close frame; returns its code (0: none, just closed).
  net::awaitable<int> read_close() {
    boost::beast::flat_buffer buf;
    auto [ec, n] = co_await ws.async_read(buf, net::as_tuple(net::use_awaitable));
    if (ec == websocket::error::closed) co_return ws.reason().code;
    if (!ec) throw std::runtime_error("a message where the close frame was expected");
    co_return 0;
  }

  net::io_context io;
  websocket::stream<tcp::socket> ws;
  websocket::response_type response;
  error_code handshake_ec;
};

}  // namespace edgerelay::testing
