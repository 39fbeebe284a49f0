// The 602SQL HTTP tunnel: dial, consume DT_CONNRESULT, then client->upstream && upstream->client
// (the upstream leg is the 602SQL server).
//
//   dial backend PORTBASE+1 (connect_timeout) -> read DT_CONNRESULT (connect_timeout)
//     refused / unreachable -> first POST answered with the stock error bytes (6.2 step 4), close
//   POSTs -> frames, frames -> responses: one duplex (idle_timeout)
// The two directions are independent coroutines; each writes only its own socket except for the
// terminal replies, which are written after both have ended. The short phases share one
// phase_deadline.
#include "sql602/runtime/http_tunnel.hpp"

#include <span>
#include <string>
#include <utility>
#include <variant>

#include <boost/asio/write.hpp>

#include "proxy/core/phase_deadline.hpp"
#include "proxy/core/write_all.hpp"
#include "proxy/inbound/http_forward.hpp"
#include "proxy/inbound/linger_close.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/relay/duplex.hpp"
#include "sql602/codec.hpp"

namespace edgerelay::proxy {
namespace {

namespace sql602 = tunnel::sql602;

constexpr std::size_t chunk_size = 16 * 1024;
constexpr std::chrono::milliseconds close_frame_limit{1000};

/// What both directions of one tunnel share (one thread, one frame).
struct tunnel_flow {
  /// fin = idle: a direction that ended leaves the other the whole idle timeout, as before.
  tunnel_flow(const net::any_io_executor& ex, std::chrono::milliseconds idle) : flow(ex, idle, idle) {}

  duplex flow;                 ///< stopped by a terminal event: the other direction ends at its next step
  bool server_closed = false;  ///< the server closed or sent DT_CLOSE_CON
  bool close_con_sent = false;
  std::uint64_t bytes_up = 0;    ///< written to the server
  std::uint64_t bytes_down = 0;  ///< written to the client
  std::string_view detail;
  std::vector<std::uint8_t> reject;  ///< the client's last bytes (malformed input), written at the end
};

/// Client POSTs -> one native frame each, in one write (docs/602sql.md). Never throws.
net::awaitable<void> client_to_upstream(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                        sql602::client_translator& in, std::vector<std::uint8_t> first,
                                        tunnel_flow& f) {
  std::vector<std::uint8_t> buf(chunk_size);
  std::span<const std::uint8_t> chunk(first);
  for (;;) {  // each turn translates what arrived, then reads the client once
    for (sql602::c2s_event ev = in.feed(chunk); !std::holds_alternative<sql602::c2s::need_more>(ev); ev = in.feed({})) {
      if (auto* frame = std::get_if<sql602::c2s::frame>(&ev)) {
        auto [ec, n] = co_await net::async_write(upstream, net::buffer(frame->bytes), use_ec);
        if (f.flow.stopped()) {
          co_return;
        }
        if (ec) {
          f.detail = "server_gone";
          f.flow.stop(relay_end::reset, ec);
          co_return;
        }
        f.bytes_up += n;
        f.flow.touch();
      } else if (auto* close = std::get_if<sql602::c2s::close_frame>(&ev)) {
        // 5.8: the raw DT_CLOSE_CON goes to the server unchanged; the server closes its side.
        auto [ec, n] = co_await net::async_write(upstream, net::buffer(close->bytes), use_ec);
        f.close_con_sent = true;
        f.bytes_up += n;
        f.detail = "client_close_frame";
        co_await upstream.shutdown_send();
        co_return;
      } else if (auto* reject = std::get_if<sql602::c2s::reject>(&ev)) {
        f.detail = reject->reason;
        f.reject = std::move(reject->reply);
        f.flow.stop(relay_end::reset, {});
        co_return;
      }
    }
    chunk = {};
    const auto read = co_await f.flow.read_some(client, net::buffer(buf));
    if (!read) {
      co_return;
    }
    if (read->ec || read->n == 0) {
      // The client went away (at a message boundary or not): the server hears DT_CLOSE_CON.
      if (f.detail.empty()) {
        f.detail = in.at_boundary() ? "client_closed" : "client_closed_mid_message";
      }
      if (!in.close_frame_seen() && !f.server_closed) {
        const auto bye = sql602::close_con_frame();
        auto [wec, written] = co_await net::async_write(upstream, net::buffer(bye), use_ec);
        f.close_con_sent = true;
        f.bytes_up += written;
      }
      co_await upstream.shutdown_send();
      co_return;
    }
    f.flow.touch();
    chunk = std::span<const std::uint8_t>(buf.data(), read->n);
  }
}

/// Server frames -> one `200 OK` per reassembled message, in order (6.4). Never throws.
net::awaitable<void> upstream_to_client(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                        sql602::server_translator& out, tunnel_flow& f) {
  std::vector<std::uint8_t> buf(chunk_size);
  std::span<const std::uint8_t> chunk;  // first turn: frames that came with DT_CONNRESULT
  for (;;) {                            // each turn translates what arrived, then reads the server once
    for (sql602::s2c_event ev = out.feed(chunk); !std::holds_alternative<sql602::s2c::need_more>(ev);
         ev = out.feed({})) {
      if (auto* response = std::get_if<sql602::s2c::response>(&ev)) {
        auto [ec, n] = co_await net::async_write(client, net::buffer(response->bytes), use_ec);
        if (f.flow.stopped()) {
          co_return;
        }
        if (ec) {
          f.detail = "client_gone";
          error_code ignored;
          client.socket().cancel(ignored);  // the other direction then tells the server
          co_return;
        }
        f.bytes_down += n;
        f.flow.touch();
      } else if (std::holds_alternative<sql602::s2c::close_client>(ev)) {
        f.server_closed = true;
        if (f.detail.empty()) {
          f.detail = "server_close_con";
        }
        f.flow.stop(relay_end::closed, {});
        co_return;
      } else if (auto* bad = std::get_if<sql602::s2c::protocol_error>(&ev)) {
        f.detail = bad->reason;
        f.flow.stop(relay_end::reset, {});
        co_return;
      } else if (auto* refused = std::get_if<sql602::s2c::refused>(&ev)) {
        f.detail = refused->reason;  // not after DT_CONNRESULT 0; treated as bad framing
        f.flow.stop(relay_end::reset, {});
        co_return;
      }
      // s2c::connected cannot come twice; nothing to do for it.
    }
    chunk = {};
    const auto read = co_await f.flow.read_some(upstream, net::buffer(buf));
    if (!read || read->ec == net::error::operation_aborted) {
      co_return;  // ended from this side (a terminal event or the idle deadline), not by the server
    }
    if (read->ec || read->n == 0) {
      f.server_closed = true;
      if (f.detail.empty()) {
        f.detail = "server_closed";
      }
      f.flow.stop(relay_end::closed, read->ec);
      co_return;
    }
    f.flow.touch();
    chunk = std::span<const std::uint8_t>(buf.data(), read->n);
  }
}

struct connect_result {
  bool connected = false;
  std::uint8_t kse = sql602::kse_connection;
  std::string_view reason;
};

/// Reads the server's first frame, which must be DT_CONNRESULT (6.2), with reads of `dl`'s current
/// phase. Never throws.
net::awaitable<connect_result> await_connect_result(tunnel::client_stream& upstream, sql602::server_translator& out,
                                                    phase_deadline& dl) {
  connect_result r;
  std::array<std::uint8_t, 512> buf;
  for (;;) {  // ends on the first frame, EOF or the phase's end
    auto [ec, n] = co_await upstream.async_read_some(net::buffer(buf), dl.token());
    if (ec || n == 0) {
      r.reason = "server_closed_before_connect_result";
      co_return r;
    }
    const sql602::s2c_event ev = out.feed(std::span<const std::uint8_t>(buf.data(), n));
    if (std::holds_alternative<sql602::s2c::connected>(ev)) {
      r.connected = true;
      co_return r;
    }
    if (const auto* refused = std::get_if<sql602::s2c::refused>(&ev)) {
      r.kse = refused->kse;
      r.reason = refused->reason;
      co_return r;
    }
    if (!std::holds_alternative<sql602::s2c::need_more>(ev)) {
      r.reason = "bad_connect_result";
      co_return r;
    }
  }
}

/// Both directions under one duplex until the tunnel ends; the account goes to `rec`, and the
/// server hears DT_CLOSE_CON when the client side ended without sending it.
net::awaitable<void> run_tunnel(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                sql602::server_translator& out, std::vector<std::uint8_t> input,
                                const config::limits_config& limits, access_record& rec, phase_deadline& dl) {
  sql602::client_translator in;
  tunnel_flow f(client.get_executor(), limits.idle_timeout);
  f.flow.add_leg(client.socket());
  f.flow.add_leg(upstream.socket());
  const duplex_result ended = co_await f.flow.run(client_to_upstream(client, upstream, in, std::move(input), f),
                                                  upstream_to_client(client, upstream, out, f));
  if (ended.end == relay_end::idle_timeout) {
    f.detail = "idle_timeout";
  }
  rec.bytes_up += f.bytes_up;
  rec.bytes_down += f.bytes_down;
  rec.detail = f.detail;

  if (!f.close_con_sent && !f.server_closed && !in.close_frame_seen()) {
    const std::vector<std::uint8_t> bye = sql602::close_con_frame();
    const bool sent = co_await write_all(upstream, bye, dl, close_frame_limit);
    if (sent) {
      rec.bytes_up += sql602::frame_header_size;
    }
  }
  upstream.close();
  if (!f.reject.empty()) {
    co_await reply_and_close(client, std::move(f.reject), dl, limits.handshake_timeout);
  }
}

/// serve_sql602_tunnel() under `dl`, which bounds its short phases.
net::awaitable<void> serve_tunnel(tunnel::client_stream& client, const config::backend_config& backend,
                                  std::vector<std::uint8_t> input, const session_context& ctx, access_record& rec,
                                  phase_deadline& dl) {
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  rec.protocol = "sql602_tunnel";
  target where = backend_target(backend);
  rec.target = backend.name + ":" + std::to_string(where.port);

  const dial_identity who{to_config_address(ctx.peer.address()), rec.user, ctx.listener->name};
  // `dialled` keeps the backend kind's share (egress address, break registration) for the tunnel.
  dialled_upstream dialled = co_await http_detail::open_upstream(who, where, ctx, rec, dl, limits.connect_timeout);
  std::optional<tunnel::client_stream>& upstream = dialled.stream;

  sql602::server_translator out;
  std::uint8_t kse = rec.result == outcome::denied ? sql602::kse_ip_filter : sql602::kse_connection;
  if (upstream) {
    dl.start(limits.connect_timeout);
    const connect_result answer = co_await await_connect_result(*upstream, out, dl);
    const bool timed_out = dl.expired();
    dl.stop();
    if (timed_out || !answer.connected) {
      rec.result = timed_out ? outcome::connect_timeout : outcome::connection_refused;
      rec.detail = timed_out ? "connect_result_timeout" : answer.reason;
      kse = timed_out ? sql602::kse_connection : answer.kse;
      upstream->close();
      upstream.reset();
    }
  }
  if (!upstream) {
    // 6.2 step 4: the first request is a tunnelled POST (that is how this connection was
    // recognised), so it gets the DT_ANSWER-shaped error the stock server writes.
    co_await reply_and_close(client, sql602::connect_failure_reply(kse, true), dl, limits.handshake_timeout);
    co_return;
  }
  co_await run_tunnel(client, *upstream, out, std::move(input), limits, rec, dl);
}

}  // namespace

net::awaitable<void> serve_sql602_tunnel(tunnel::client_stream& client, const config::backend_config& backend,
                                         std::vector<std::uint8_t> input, const session_context& ctx,
                                         access_record& rec) {
  co_await with_phase_deadline(client.get_executor(), [&](phase_deadline& dl) {
    return serve_tunnel(client, backend, std::move(input), ctx, rec, dl);
  });
}

}  // namespace edgerelay::proxy
