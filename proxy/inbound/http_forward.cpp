// Forward proxying of absolute-form requests and the listener's fallback, request by request.
//
// One client connection, keep-alive:
//   head -> [proxy auth] -> rules + dial (or the rules on the open upstream's address, for the
//        same authority: allowed, it is reused; denied, closed and 403)
//        -> request head upstream -> request body up, response down: one duplex (idle_timeout)
//        -> next head (handshake_timeout), under the worker's current snapshot ...
// The short phases (dial, head writes, next head, the lingering close) share one phase_deadline.
// Bodies pass in 16 KiB pieces as body_tracker delimits them; nothing buffers a whole body.
#include "proxy/inbound/http_forward.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>

#include <boost/asio/write.hpp>

#include "config/address.hpp"
#include "proxy/inbound/credentials.hpp"
#include "proxy/inbound/door.hpp"
#include "proxy/inbound/linger_close.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/relay/duplex.hpp"
#include "proxy/core/write_all.hpp"
#include "proxy/relay/stream_relay.hpp"
#include "tunnel/forward_codec.hpp"

namespace edgerelay::proxy {

namespace http_detail {

net::awaitable<dialled_upstream> open_upstream(const dial_identity& who, const target& where,
                                               const session_context& ctx, access_record& rec, phase_deadline& dl,
                                               std::chrono::milliseconds limit) {
  dl.start(limit);
  dialled_upstream opened = co_await plan_for(ctx, where).dial(ctx, who, where, rec, dl);
  dl.stop();
  if (opened.stream && ctx.identity != nullptr) {
    *ctx.identity = opened.identity;  // what a reload's recheck decides again
  }
  co_return opened;
}

}  // namespace http_detail

namespace {

using namespace http_detail;

constexpr std::size_t chunk_size = 16 * 1024;
constexpr std::size_t max_requests_per_connection = 100000;
constexpr int max_interim_responses = 16;

/// The upstream connection of a keep-alive client, kept while requests go to the same authority.
/// While it is open for a decided request, the session's recheck identity names it; otherwise
/// that identity is empty, so a reload's recheck leaves the connection to the next decision.
class upstream_leg {
 public:
  explicit upstream_leg(session_identity* recheck) : recheck_(recheck) {}
  upstream_leg(const upstream_leg&) = delete;
  upstream_leg& operator=(const upstream_leg&) = delete;
  ~upstream_leg() { close(); }

  tunnel::client_stream& stream() { return *socket_; }
  const std::string& dialled() const noexcept { return dialled_; }

  /// Takes over a fresh dial for `authority` (reached as `where`) under `snapshot`; `rec` names
  /// the address it dialled.
  void adopt(dialled_upstream& opened, const tunnel::authority_target& authority, const target& where,
             std::shared_ptr<const runtime_snapshot> snapshot, const access_record& rec) {
    socket_ = std::move(opened.stream);
    dialled_under_ = std::move(snapshot);
    hold_ = std::move(opened.hold);
    authority_ = authority;
    backend_ = where.backend != nullptr ? where.backend->name : std::string();
    identity_ = opened.identity;
    dialled_ = rec.dialled;
    decided();
  }

  /// The rules' answer for `who`'s request to `where` on this connection: the question a dial
  /// asks, at the address this one dialled.
  config::decision decide(const config::policy& pol, const dial_identity& who, const target& where) const {
    const std::string_view host = where.backend != nullptr ? std::string_view(where.backend->name) : where.host;
    return pol.decide(config::request{.source = who.source,
                                      .user = who.user,
                                      .listener = who.listener,
                                      .host = host,
                                      .address = identity_.dialled,
                                      .port = where.port});
  }

  /// This request was allowed on the open connection: the recheck identity names it again,
  /// for `who`'s request (the record's user is the request's).
  void reuse_for(const dial_identity& who, const target& where) {
    identity_.source = who.source;
    identity_.policy_host = where.backend != nullptr ? where.backend->name : where.host;
    identity_.port = where.port;
    decided();
  }

  /// A new request began: until it is decided, no recheck may decide it with the old request's
  /// facts (its record does not yet name the new user).
  void undecided() {
    if (recheck_ != nullptr) {
      *recheck_ = session_identity{};
    }
  }

  void close() {
    if (socket_) {
      socket_->close();
      socket_.reset();
    }
    hold_.reset();  // before the snapshot it may refer into
    dialled_under_.reset();
    undecided();
  }

  /// Open for `a` as `where` names it (the same backend, or none), and the server has neither
  /// closed it nor sent anything unasked since the last response (a non-blocking probe:
  /// would_block is the only good answer).
  bool reusable_for(const tunnel::authority_target& a, const target& where) {
    if (!socket_ || a.port != authority_.port || !config::host_equals(a.host, authority_.host)) {
      return false;
    }
    const std::string_view backend = where.backend != nullptr ? std::string_view(where.backend->name) : "";
    if (backend != backend_) {
      return false;  // a reload routed the name to another backend, or to none
    }
    error_code ec;
    tcp::socket& s = socket_->socket();
    s.non_blocking(true, ec);
    if (ec) {
      return false;
    }
    // For a TLS leg this sees raw bytes: any (even a ticket or an alert) means "do not reuse".
    std::array<std::uint8_t, 1> probe;
    s.receive(net::buffer(probe), tcp::socket::message_peek, ec);
    return ec == net::error::would_block;
  }

 private:
  void decided() {
    if (recheck_ != nullptr) {
      *recheck_ = identity_;
    }
  }

  session_identity* recheck_;
  std::optional<tunnel::client_stream> socket_;
  tunnel::authority_target authority_;
  std::string backend_;  ///< the backend it was dialled as; empty for a plain target
  session_identity identity_;
  std::string dialled_;
  std::shared_ptr<const runtime_snapshot> dialled_under_;  ///< what `hold_` and the dial referred to
  std::unique_ptr<backend_hold> hold_;                     ///< the backend kind's share while this upstream is open
};

/// The state the two halves of one request/response exchange share (one thread, one frame).
struct exchange {
  /// fin = idle: once the request body is through, the response still has the whole idle timeout.
  exchange(const net::any_io_executor& ex, std::chrono::milliseconds idle) : flow(ex, idle, idle) {}

  duplex flow;                    ///< stopped when one half failed, or the response ended the exchange early
  bool request_done = false;      ///< the whole request body went upstream
  bool response_started = false;  ///< response bytes reached the client
  bool response_done = false;
  bool client_keep = false;    ///< the client connection may carry another request
  bool upstream_keep = false;  ///< the upstream connection may carry another request
  unsigned status = 0;
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
  std::string_view detail;
  std::vector<std::uint8_t> carry;  ///< client bytes behind the request body (the next request)
  std::vector<std::uint8_t> error;  ///< reply for the client when the response failed before it started
};

/// Ends both halves; neither connection carries another request.
void abort_exchange(exchange& x, relay_end why) {
  x.client_keep = false;
  x.upstream_keep = false;
  x.flow.stop(why, {});
}

enum class pass_result : std::uint8_t { passed, body_done, bad_body, write_failed, stopped };

/// Writes the bytes of `pending` that belong to the body (as `body` delimits them) to `to` and
/// counts them in `counter`; `passed_bytes` says how many of `pending` were used. Never throws.
net::awaitable<pass_result> pass_body_bytes(tunnel::body_tracker& body, const std::vector<std::uint8_t>& pending,
                                            tunnel::client_stream& to, std::uint64_t& counter, exchange& x,
                                            std::size_t& passed_bytes) {
  passed_bytes = 0;
  const tunnel::body_step step = body.feed(pending);
  if (step.state == tunnel::body_state::error) {
    co_return pass_result::bad_body;
  }
  if (step.consumed > 0) {
    auto [ec, n] = co_await net::async_write(to, net::buffer(pending.data(), step.consumed), use_ec);
    if (x.flow.stopped()) {
      co_return pass_result::stopped;
    }
    if (ec) {
      co_return pass_result::write_failed;
    }
    counter += n;
    x.flow.touch();
  }
  passed_bytes = step.consumed;
  co_return step.state == tunnel::body_state::done ? pass_result::body_done : pass_result::passed;
}

/// Writes a response head (interim or final) to the client and counts it as response bytes.
net::awaitable<pass_result> send_response_head(tunnel::client_stream& client, std::vector<std::uint8_t> head,
                                               exchange& x) {
  auto [ec, n] = co_await net::async_write(client, net::buffer(head), use_ec);
  if (x.flow.stopped()) {
    co_return pass_result::stopped;
  }
  if (ec) {
    co_return pass_result::write_failed;
  }
  x.response_started = true;
  x.bytes_down += n;
  co_return pass_result::passed;
}

/// Client -> upstream: the request body, as its framing delimits it. Never throws.
net::awaitable<void> send_request_body(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                       tunnel::body_framing framing, exchange& x) {
  if (framing.kind == tunnel::body_kind::none) {
    x.request_done = true;
    co_return;
  }
  tunnel::body_tracker body(framing);
  std::vector<std::uint8_t> pending = std::move(x.carry);
  x.carry.clear();
  std::vector<std::uint8_t> buf(chunk_size);
  for (;;) {  // each turn consumes client bytes or ends
    if (!pending.empty()) {
      std::size_t used = 0;
      const pass_result r = co_await pass_body_bytes(body, pending, upstream, x.bytes_up, x, used);
      if (r == pass_result::stopped) {
        co_return;
      }
      if (r == pass_result::bad_body) {
        x.detail = "bad_request_body";
        if (!x.response_started) {
          x.error = tunnel::error_reply(400);
        }
        break;
      }
      if (r == pass_result::write_failed) {
        x.detail = "upstream_gone";
        break;
      }
      if (r == pass_result::body_done) {
        x.carry.assign(pending.begin() + static_cast<std::ptrdiff_t>(used), pending.end());
        x.request_done = true;
        co_return;
      }
      pending.clear();
    }
    const auto read = co_await x.flow.read_some(client, net::buffer(buf));
    if (!read) {
      co_return;
    }
    if (read->ec || read->n == 0) {
      x.detail = "client_gone";
      break;
    }
    x.flow.touch();
    pending.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(read->n));
  }
  if (!x.response_done) {
    abort_exchange(x, relay_end::reset);
  } else {
    x.client_keep = false;
  }
}

/// Upstream -> client: interim responses, then the final head and its body. Never throws.
net::awaitable<void> relay_response(tunnel::client_stream& client, tunnel::client_stream& upstream,
                                    const tunnel::request_head& request, exchange& x) {
  bool ok = false;
  std::vector<std::uint8_t> buf(chunk_size);
  std::vector<std::uint8_t> pending;  // upstream bytes read but not yet passed on
  for (int interim = 0; interim <= max_interim_responses && !ok; ++interim) {
    tunnel::response_head_reader reader(request.method);
    tunnel::response_result r = reader.feed(pending);
    pending.clear();
    while (std::holds_alternative<tunnel::need_more>(r)) {
      const auto read = co_await x.flow.read_some(upstream, net::buffer(buf));
      if (!read) {
        co_return;  // the request side failed (before the response began), or the deadline passed
      }
      if (read->ec || read->n == 0) {
        x.detail = "upstream_closed";
        if (!x.response_started) {
          x.error = tunnel::error_reply(502);
        }
        break;
      }
      x.flow.touch();
      r = reader.feed(std::span<const std::uint8_t>(buf.data(), read->n));
    }
    if (std::holds_alternative<tunnel::need_more>(r)) {
      break;
    }
    if (auto* err = std::get_if<tunnel::http_error>(&r)) {
      x.detail = "bad_response";
      if (!x.response_started) {
        x.error = std::move(err->reply);
      }
      break;
    }
    const tunnel::response_head& response = std::get<tunnel::parsed<tunnel::response_head>>(r).value;
    const auto rest = reader.leftover();
    pending.assign(rest.begin(), rest.end());
    if (response.interim()) {
      const pass_result sent = co_await send_response_head(client, tunnel::build_forward_response(response, ""), x);
      if (sent == pass_result::stopped) {
        co_return;
      }
      if (sent == pass_result::write_failed) {
        x.detail = "client_gone";
        break;
      }
      continue;
    }

    x.status = response.status;
    // The client may send another request when it asked to, the response has its own length and
    // the request body already went through (else the rest of it could not be told apart).
    x.client_keep = request.keep_alive && response.status != 101 &&
                    response.framing.kind != tunnel::body_kind::until_close && x.request_done;
    const std::string_view connection = x.client_keep ? (request.version == 10 ? "keep-alive" : "") : "close";
    {
      const pass_result sent =
          co_await send_response_head(client, tunnel::build_forward_response(response, connection), x);
      if (sent == pass_result::stopped) {
        co_return;
      }
      if (sent == pass_result::write_failed) {
        x.detail = "client_gone";
        break;
      }
    }

    tunnel::body_tracker body(response.framing);
    for (;;) {  // each turn passes upstream bytes on or ends
      if (!pending.empty() && !body.done()) {
        std::size_t used = 0;
        const pass_result passed = co_await pass_body_bytes(body, pending, client, x.bytes_down, x, used);
        if (passed == pass_result::stopped) {
          co_return;
        }
        if (passed == pass_result::bad_body) {
          x.detail = "bad_response_body";
          break;
        }
        if (passed == pass_result::write_failed) {
          x.detail = "client_gone";
          break;
        }
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
      }
      if (body.done()) {
        // Bytes behind a complete response were never asked for: do not reuse that connection.
        x.upstream_keep = response.keep_alive && pending.empty();
        ok = true;
        break;
      }
      const auto read = co_await x.flow.read_some(upstream, net::buffer(buf));
      if (!read) {
        co_return;
      }
      if (read->ec || read->n == 0) {
        if ((read->ec == net::error::eof || read->n == 0) && body.eof_is_end()) {
          ok = true;
        } else {
          x.detail = "upstream_closed";
        }
        break;
      }
      x.flow.touch();
      pending.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(read->n));
    }
    break;
  }
  x.response_done = ok;
  if (!ok) {
    abort_exchange(x, relay_end::reset);
  } else if (!x.request_done) {
    // Answered before the request body ended (an early error, say): that body is dropped and
    // the connection closes, as the response head said.
    abort_exchange(x, relay_end::closed);
  }
}

/// One absolute-form request. Returns true when the client connection may carry another one;
/// `carry` then holds the client bytes already read behind this request.
net::awaitable<bool> forward_one(tunnel::client_stream& client, const tunnel::request_head& head,
                                 std::vector<std::uint8_t>& carry, upstream_leg& up, const session_context& ctx,
                                 access_record& rec, phase_deadline& dl) {
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  rec.target = tunnel::to_string(head.authority);
  const bool authorized = co_await http_proxy_authorized(ctx, head, rec);
  if (!authorized) {
    rec.result = outcome::bad_credentials;
    co_await reply_and_close(client, tunnel::error_reply(407), dl, limits.handshake_timeout);
    co_return false;
  }

  target where = from_authority(head.authority);
  route_to_backend(ctx, where);
  const dial_identity who{to_config_address(ctx.peer.address()), rec.user, ctx.listener->name};
  if (up.reusable_for(head.authority, where)) {
    // Each request is decided on its own: another user, or a reload, may change the answer.
    const config::decision d = up.decide(ctx.snapshot->pol, who, where);
    rec.rule = d.rule_name;
    rec.dialled = up.dialled();
    if (d.result != config::verdict::allow) {
      up.close();
      rec.result = outcome::denied;
      co_await reply_and_close(client, tunnel::error_reply(403), dl, limits.handshake_timeout);
      co_return false;
    }
    up.reuse_for(who, where);
  } else {
    up.close();
    dialled_upstream opened = co_await open_upstream(who, where, ctx, rec, dl, limits.connect_timeout);
    if (!opened.stream && opened.leg) {
      // Forward proxying relays on a socket; a message upstream (edgerelay client's WebSocket) has none.
      opened.leg->close();
      rec.result = outcome::general_failure;
      rec.detail = "forward_needs_stream";
    }
    if (!opened.stream) {
      co_await reply_and_close(client, tunnel::error_reply(to_http_status(rec.result)), dl, limits.handshake_timeout);
      co_return false;
    }
    up.adopt(opened, head.authority, where, ctx.snapshot, rec);
  }
  rec.result = outcome::success;

  const std::vector<std::uint8_t> request = tunnel::build_forward_request(head, head.keep_alive);
  const bool written = co_await write_all(up.stream(), request, dl, limits.idle_timeout);
  if (!written) {
    up.close();
    rec.result = outcome::general_failure;
    rec.detail = "upstream_gone";
    co_await reply_and_close(client, tunnel::error_reply(502), dl, limits.handshake_timeout);
    co_return false;
  }
  rec.bytes_up += request.size();

  exchange x(client.get_executor(), limits.idle_timeout);
  x.carry = std::move(carry);
  {
    x.flow.add_leg(client.socket());
    x.flow.add_leg(up.stream().socket());
    const duplex_result ended =
        co_await x.flow.run(send_request_body(client, up.stream(), tunnel::request_body_framing(head), x),
                            relay_response(client, up.stream(), head, x));
    if (ended.end == relay_end::idle_timeout) {
      x.detail = "idle_timeout";
      x.client_keep = false;
      x.upstream_keep = false;
      if (!x.response_started) {
        x.error = tunnel::error_reply(504);
      }
    }
  }
  carry = std::move(x.carry);
  rec.bytes_up += x.bytes_up;
  rec.bytes_down += x.bytes_down;
  if (!x.detail.empty()) {
    rec.detail = x.detail;
  }
  if (!x.upstream_keep) {
    up.close();
  }
  if (!x.error.empty()) {
    rec.result = outcome::general_failure;
    co_await reply_and_close(client, std::move(x.error), dl, limits.handshake_timeout);
    co_return false;
  }
  if (!x.response_done) {
    rec.result = outcome::general_failure;
  }
  co_return x.client_keep;
}

/// A request to the gateway itself: 404, or the rest of the connection relayed to the fallback
/// backend (this head re-sent with Via, then everything opaque).
net::awaitable<void> serve_fallback(tunnel::client_stream& client, const tunnel::request_head& head,
                                    std::vector<std::uint8_t> carry, const session_context& ctx, access_record& rec,
                                    phase_deadline& dl) {
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  const config::backend_config* backend = ctx.snapshot->find_backend(ctx.listener->fallback);
  if (backend == nullptr) {
    rec.result = outcome::malformed;
    rec.detail = "not_a_proxy_request";
    co_await reply_and_close(client, tunnel::error_reply(404), dl, limits.handshake_timeout);
    co_return;
  }
  target where = backend_target(*backend);
  rec.target = backend->name + ":" + std::to_string(where.port);
  const dial_identity who{to_config_address(ctx.peer.address()), rec.user, ctx.listener->name};
  dialled_upstream opened = co_await open_upstream(who, where, ctx, rec, dl, limits.connect_timeout);
  if (!opened.stream) {
    co_await reply_and_close(client, tunnel::error_reply(to_http_status(rec.result)), dl, limits.handshake_timeout);
    co_return;
  }
  tunnel::client_stream& upstream = *opened.stream;
  std::vector<std::uint8_t> first = tunnel::build_forward_request(head, head.keep_alive);
  first.insert(first.end(), carry.begin(), carry.end());
  const bool written = co_await write_all(upstream, first, dl, limits.idle_timeout);
  if (!written) {
    rec.detail = "upstream_gone";
    co_await reply_and_close(client, tunnel::error_reply(502), dl, limits.handshake_timeout);
    co_return;
  }
  rec.bytes_up += first.size();
  const relay_options opts{.idle_timeout = limits.idle_timeout, .fin_timeout = limits.fin_timeout, .use_splice = true};
  const relay_result r = co_await async_relay_streams(client, upstream, *ctx.services->pools, opts, net::use_awaitable);
  rec.bytes_up += r.bytes_up;
  rec.bytes_down += r.bytes_down;
  if (r.end != relay_end::closed) {
    rec.detail = to_string(r.end);
  }
  upstream.close();
}

struct next_head {
  enum class kind : std::uint8_t { closed, parsed, error } k = kind::closed;
  tunnel::request_head head;
  std::vector<std::uint8_t> leftover;
  tunnel::http_error error;
};

/// The next request head of a keep-alive connection, starting with `carry`, within `limit` (a
/// phase of `dl`). Closed when the client closed, failed or took too long. Never throws.
net::awaitable<next_head> read_next_head(tunnel::client_stream& client, std::vector<std::uint8_t> carry,
                                         phase_deadline& dl, std::chrono::milliseconds limit) {
  next_head out;
  tunnel::request_head_reader reader;
  tunnel::head_result r = reader.feed(carry);
  std::array<std::uint8_t, 4096> buf;
  dl.start(limit);
  while (std::holds_alternative<tunnel::need_more>(r)) {
    auto [ec, n] = co_await client.async_read_some(net::buffer(buf), dl.token());
    if (ec || n == 0) {
      dl.stop();
      co_return out;
    }
    r = reader.feed(std::span<const std::uint8_t>(buf.data(), n));
  }
  dl.stop();
  if (auto* err = std::get_if<tunnel::http_error>(&r)) {
    out.k = next_head::kind::error;
    out.error = std::move(*err);
    co_return out;
  }
  out.k = next_head::kind::parsed;
  out.head = std::move(std::get<tunnel::parsed<tunnel::request_head>>(r).value);
  const auto rest = reader.leftover();
  out.leftover.assign(rest.begin(), rest.end());
  co_return out;
}

/// Writes the finished request's access line and starts a fresh record for the next request.
/// The line's duration covers the request, not the wait for its successor.
void next_record(access_record& rec, const session_context& ctx, std::chrono::steady_clock::time_point finished) {
  if (ctx.snapshot->cfg.log.access_json) {
    rec.started += std::chrono::steady_clock::now() - finished;
    write_access_line(rec);
  }
  access_record fresh;
  fresh.listener = rec.listener;
  fresh.client = std::move(rec.client);
  fresh.protocol = rec.protocol;
  fresh.tls_version = std::move(rec.tls_version);  // the connection's TLS facts hold for every request
  fresh.sni = std::move(rec.sni);
  if (rec.user_from_certificate) {
    fresh.user = std::move(rec.user);
    fresh.user_from_certificate = true;
  }
  rec = std::move(fresh);
}

/// Points `current` at the worker's current snapshot and the session's listener in it, so a
/// request that starts after a reload is served and decided under the new configuration. False
/// when the reload removed or renamed the listener: the connection takes no more requests.
bool follow_reload(session_context& current) {
  const std::shared_ptr<const runtime_snapshot>* latest = current.services->current_snapshot;
  if (latest == nullptr || *latest == nullptr || *latest == current.snapshot) {
    return true;
  }
  const config::listener_config* listener = (*latest)->find_listener(current.listener->name);
  if (listener == nullptr) {
    return false;
  }
  current.snapshot = *latest;
  current.listener = listener;
  return true;
}

/// serve_requests() under `dl`, which bounds every short phase of the connection.
net::awaitable<void> serve_each_request(tunnel::client_stream& client, tunnel::request_head first,
                                        std::vector<std::uint8_t> carry, const session_context& ctx, access_record& rec,
                                        phase_deadline& dl) {
  session_context current = ctx;  // the first request runs under the session's snapshot, as its door did
  upstream_leg up(ctx.identity);
  tunnel::request_head head = std::move(first);
  auto finished = std::chrono::steady_clock::now();
  for (std::size_t n = 0; n < max_requests_per_connection; ++n) {
    if (n > 0) {
      const std::chrono::milliseconds wait = current.snapshot->cfg.limits.handshake_timeout;
      next_head next = co_await read_next_head(client, std::move(carry), dl, wait);
      if (next.k == next_head::kind::closed) {
        break;  // the last request's record stays for the session to write
      }
      next_record(rec, current, finished);
      up.undecided();
      const bool listener_kept = follow_reload(current);
      const std::chrono::milliseconds limit = current.snapshot->cfg.limits.handshake_timeout;
      if (next.k == next_head::kind::error) {
        rec.result = outcome_of_http_refusal(next.error.status);
        rec.detail = next.error.reason;
        co_await reply_and_close(client, std::move(next.error.reply), dl, limit);
        break;
      }
      head = std::move(next.head);
      carry = std::move(next.leftover);
      rec.target = head.target;
      if (!listener_kept) {
        rec.result = outcome::general_failure;
        rec.detail = "listener_removed";
        co_await reply_and_close(client, tunnel::error_reply(503), dl, limit);
        break;
      }
    }
    const std::chrono::milliseconds limit = current.snapshot->cfg.limits.handshake_timeout;
    if (head.form == tunnel::target_form::origin || head.form == tunnel::target_form::asterisk) {
      up.close();
      co_await serve_fallback(client, head, std::move(carry), current, rec, dl);
      break;
    }
    if (head.form != tunnel::target_form::absolute) {
      rec.result = outcome::malformed;
      co_await reply_and_close(client, tunnel::error_reply(400), dl, limit);
      break;
    }
    const bool keep = co_await forward_one(client, head, carry, up, current, rec, dl);
    finished = std::chrono::steady_clock::now();
    if (!keep) {
      break;
    }
  }
  up.close();
}

}  // namespace

net::awaitable<void> serve_requests(tunnel::client_stream& client, tunnel::request_head first,
                                    std::vector<std::uint8_t> carry, const session_context& ctx, access_record& rec) {
  co_await with_phase_deadline(client.get_executor(), [&](phase_deadline& dl) {
    return serve_each_request(client, std::move(first), std::move(carry), ctx, rec, dl);
  });
}

}  // namespace edgerelay::proxy
