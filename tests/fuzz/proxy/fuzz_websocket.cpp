// Fuzzes the WebSocket door's input: the upgrade request (head reader, then the door's checks and
// its refusal bytes), the control-message parser, and the frames behind an accepted upgrade, read
// by the door's channel over a loopback connection as the gateway reads them.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>

#include "proxy/inbound/websocket_door.hpp"
#include "proxy/outbound/gateway/websocket_wire.hpp"
#include "tunnel/http_connect_codec.hpp"

namespace {

using namespace edgerelay;
using edgerelay::proxy::gateway::channel_read;
using edgerelay::proxy::gateway::control_op;

void check(bool ok) {
  if (!ok) std::abort();
}

void check_reply(unsigned status, const std::vector<std::uint8_t>& reply) {
  const std::string_view text(reinterpret_cast<const char*>(reply.data()), reply.size());
  check(text.starts_with("HTTP/1.1 " + std::to_string(status) + " "));
  check(text.find("\r\nContent-Length: ") != std::string_view::npos);
  check(text.find("\r\nCache-Control: no-store\r\n") != std::string_view::npos);
  check(text.find("\r\n\r\n") != std::string_view::npos);
}

/// Reads `frames` through the door's channel after accepting `head`: it never returns more
/// stream bytes than were sent, and always ends (the sender closes).
void read_frames(const tunnel::request_head& head, const std::string& subprotocol,
                 std::span<const std::uint8_t> frames) {
  net::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket sender(io);
  sender.connect(acceptor.local_endpoint());
  tunnel::client_stream server(acceptor.accept());
  std::size_t received = 0;
  bool ended = false;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        proxy::gateway::ws_channel channel(server, std::chrono::milliseconds(500));
        if (co_await channel.accept(head, subprotocol, {})) {
          ended = true;
          server.close();
          co_return;
        }
        std::array<std::uint8_t, 4096> buf;
        for (int i = 0; i < 10000; ++i) {
          const channel_read r = co_await channel.read(net::buffer(buf));
          if (r.ec) break;
          received += r.n;
        }
        ended = true;
        server.close();  // the sender reads until this end
      },
      net::detached);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        // Read the 101 away so the server's write never blocks, then send the frames and end.
        co_await net::async_write(sender, net::buffer(frames.data(), frames.size()), use_ec);
        error_code ignored;
        sender.shutdown(tcp::socket::shutdown_send, ignored);
        std::array<std::uint8_t, 4096> sink;
        for (;;) {
          auto [ec, n] = co_await sender.async_read_some(net::buffer(sink), use_ec);
          if (ec) break;
        }
      },
      net::detached);
  io.run_for(std::chrono::seconds(3));
  check(ended);
  check(received <= frames.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const control_op op = proxy::gateway::parse_control(text);
  if (op == control_op::fin) check(text.find("fin") != std::string_view::npos);

  tunnel::request_head_reader reader;
  const tunnel::head_result result = reader.feed(in);
  const auto* parsed = std::get_if<tunnel::parsed<tunnel::request_head>>(&result);
  if (parsed == nullptr) return 0;
  const tunnel::request_head& head = parsed->value;
  if (!proxy::is_websocket_upgrade(head)) return 0;
  const auto checked = proxy::check_websocket_upgrade(head, "/edgerelay");
  if (const auto* no = std::get_if<proxy::websocket_refusal>(&checked)) {
    check(no->status == 400 || no->status == 404 || no->status == 426);
    check_reply(no->status, proxy::websocket_error_reply(no->status, no->why, no->reason));
    return 0;
  }
  const auto& ask = std::get<proxy::websocket_ask>(checked);
  check(ask.udp != !ask.target.empty());
  for (const char c : ask.target) check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
  read_frames(head, ask.subprotocol, reader.leftover());
  return 0;
}
