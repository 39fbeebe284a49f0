// The polling transport: the open, and the gateway leg whose writes are up requests and whose
// reads are long polls, each request a short phase under its own deadline.
#include "proxy/outbound/gateway/polling_transport.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <exception>
#include <memory>
#include <utility>
#include <vector>

#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/errc.hpp>

#include "proxy/observe/log.hpp"
#include "proxy/observe/text_escape.hpp"
#include "tunnel/poll_client_codec.hpp"

namespace edgerelay::proxy::gateway {
namespace {

using tunnel::poll_answer;
using tunnel::poll_answer_reader;
using tunnel::poll_control;

error_code protocol_error() {
  return make_error_code(boost::system::errc::protocol_error);
}

std::string escaped(std::string_view s) {
  std::string out;
  append_log_escaped(out, s.substr(0, 200));
  return out;
}

std::string body_text(const poll_answer& a) {
  std::string body(a.body.begin(), a.body.end());
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  return escaped(body);
}

/// A proxy's 502 or 504 (the gateway closed a kept connection the proxy chose, or did not answer
/// in time): the request may or may not have reached the gateway, which answers a repeat of the
/// same seq without doubling or losing bytes, so it is sent again like a lost answer.
bool proxy_lost(const poll_answer& a) noexcept {
  return (a.status == 502 || a.status == 504) && a.result.empty() && !a.seq && !a.ack;
}

/// One kept connection to the gateway (or to the proxy that forwards to it).
struct poll_conn {
  std::optional<tunnel::client_stream> stream;
  phase_deadline* active = nullptr;  ///< the deadline of the request under way, for abort()
  bool busy = false;                 ///< a request is under way on it
  bool aborted = false;              ///< no request starts any more

  void drop() noexcept {
    if (stream) stream->close();
    stream.reset();
  }
  /// Ends the request under way at once: its deadline expires now.
  void abort() noexcept {
    aborted = true;
    if (active == nullptr) return;
    try {
      active->start(std::chrono::milliseconds(0));
    } catch (...) {
      // A timer that cannot be armed: closing the socket ends the request too.
      if (stream) stream->close();
    }
  }
};

/// The result of one request: the answer, or why none came.
struct exchange_result {
  error_code ec;
  std::string why;  ///< for logs, when ec is set
};

/// Sends `head` (and `body`) on `c`, connecting it through `route` first when it has no stream,
/// and reads one answer into `out`, all within `limit` (`connect_limit` for the connect). A
/// connection that failed, or whose answer says it ends, is dropped: the next request reconnects.
net::awaitable<exchange_result> exchange(const gateway_route& route, poll_conn& c, const std::string& head,
                                         net::const_buffer body, std::chrono::milliseconds limit,
                                         std::chrono::milliseconds connect_limit, poll_answer& out) {
  const auto ex = co_await net::this_coro::executor;
  c.busy = true;
  exchange_result r = co_await with_phase_deadline(ex, [&](phase_deadline& dl) -> net::awaitable<exchange_result> {
    exchange_result res;
    c.active = &dl;
    if (c.aborted) {
      c.active = nullptr;
      res.ec = net::error::operation_aborted;
      res.why = "aborted";
      co_return res;
    }
    if (!c.stream) {
      dl.start(connect_limit);
      route_connection conn = co_await route.connect(dl);
      if (conn.result != outcome::success || !conn.stream) {
        c.active = nullptr;
        res.ec = net::error::connection_refused;
        res.why = conn.failed_hop + " hop: " + conn.detail;
        co_return res;
      }
      c.stream.emplace(std::move(*conn.stream));
    }
    if (c.aborted) {  // while connecting: the abort's phase is over, do not start another
      c.active = nullptr;
      res.ec = net::error::operation_aborted;
      res.why = "aborted";
      co_return res;
    }
    dl.start(limit);
    const std::array<net::const_buffer, 2> request{net::buffer(head), body};
    auto [wec, written] = co_await net::async_write(*c.stream, request, dl.token());
    if (wec) {
      res.ec = dl.expired() ? error_code(net::error::timed_out) : wec;
      res.why = "sending a request: " + res.ec.message();
    }
    poll_answer_reader reader;
    std::vector<std::uint8_t> buf(16 * 1024);
    while (!res.ec) {
      auto [rec, n] = co_await c.stream->async_read_some(net::buffer(buf), dl.token());
      if (rec) {
        res.ec = dl.expired() ? error_code(net::error::timed_out) : rec;
        res.why = "reading an answer: " + res.ec.message();
        break;
      }
      const auto fed = reader.feed(std::span<const std::uint8_t>(buf.data(), n));
      if (fed.now == poll_answer_reader::state::need_more) continue;
      if (fed.now == poll_answer_reader::state::malformed || fed.consumed != n) {
        res.ec = protocol_error();
        res.why = fed.now == poll_answer_reader::state::malformed ? "malformed answer: " + std::string(reader.what())
                                                                  : std::string("bytes behind an answer");
        break;
      }
      out = std::move(reader.answer());
      break;
    }
    c.active = nullptr;
    dl.stop();
    co_return res;
  });
  if (r.ec || !out.keep_alive) c.drop();
  c.busy = false;
  co_return r;
}

/// One session's state, shared by its leg and the background work that may outlive the leg's
/// calls (a break being sent, the close request).
struct poll_link {
  poll_link(const gateway_route& rt, const polling_options& o, tunnel::poll_client_target t, std::string session,
            const net::any_io_executor& executor)
      : route(rt), options(o), target(std::move(t)), id(std::move(session)), ex(executor), writer_free(executor) {}

  const gateway_route& route;
  polling_options options;
  tunnel::poll_client_target target;
  std::string id;
  net::any_io_executor ex;
  tunnel::poll_sequence seq;
  poll_conn up;
  poll_conn down;
  std::vector<std::uint8_t> ready;  ///< down bytes not read yet
  std::size_t ready_at = 0;
  /// Bytes written and not sent yet. The relay hands over at most 16 KiB at a time; gathered here
  /// up to a full body while the previous up request is under way, they cross in 64 KiB requests.
  std::vector<std::uint8_t> outbox;
  net::steady_timer writer_free;  ///< a write or shutdown waiting on the sender is woken by its cancel()
  unsigned breaks_pending = 0;
  bool sender_running = false;
  bool fin_wanted = false;
  error_code send_error;  ///< the sender's failure, for the next write or shutdown
  bool peer_fin = false;
  bool fin_sent = false;
  bool aborted = false;  ///< cancel() or close(): every operation ends
  bool closed = false;
  bool failed = false;  ///< the gateway ended the session (409, 404): nothing to close

  void abort_io() noexcept {
    aborted = true;
    try {
      writer_free.cancel();
    } catch (...) {
      // the write waiting on it ends with its request's abort below
    }
    up.abort();
    down.abort();
  }
};

/// Sends one up request (seq up()) until the gateway accepted it: again on 503 (its upstream was
/// still busy) and after a lost answer (the gateway answers a retry of an accepted seq with 204
/// and delivers it once).
net::awaitable<error_code> send_up(poll_link& l, net::const_buffer body, poll_control control) {
  unsigned lost = 0;
  for (;;) {
    if (l.aborted) co_return error_code(net::error::operation_aborted);
    const std::string head = tunnel::poll_up_head(l.target, l.id, l.seq.up(), body.size(), control);
    poll_answer a;
    const exchange_result r =
        co_await exchange(l.route, l.up, head, body, l.options.up_timeout, l.options.connect_timeout, a);
    if (l.aborted) co_return error_code(net::error::operation_aborted);
    if (r.ec) {
      if (++lost > l.options.max_lost) {
        log::info("gateway", "polling session ", l.id.substr(0, 8), ": up seq ", l.seq.up(), " lost ", lost,
                  " times, last ", r.why);
        co_return r.ec;
      }
      continue;
    }
    if (l.seq.up_accepted(a)) co_return error_code{};
    if (a.status == 503) {  // the gateway's upstream is still busy with the previous body
      lost = 0;
      continue;
    }
    if (proxy_lost(a)) {
      if (++lost > l.options.max_lost) {
        log::info("gateway", "polling session ", l.id.substr(0, 8), ": up seq ", l.seq.up(), " answered ", a.status,
                  " by the proxy ", lost, " times");
        co_return error_code(net::error::connection_reset);
      }
      continue;
    }
    lost = 0;
    l.failed = a.status == 409 || a.status == 404;
    log::info("gateway", "polling session ", l.id.substr(0, 8), ": up seq ", l.seq.up(), " answered ", a.status, " ",
              body_text(a));
    co_return error_code(net::error::connection_reset);
  }
}

/// `kept`: an idle kept connection of the session, else the close opens one.
net::awaitable<void> send_close(std::shared_ptr<poll_link> l, std::optional<tunnel::client_stream> kept) {
  poll_conn c;
  c.stream = std::move(kept);
  const std::string head = tunnel::poll_close_request(l->target, l->id);
  poll_answer a;
  const exchange_result r =
      co_await exchange(l->route, c, head, {}, l->options.close_timeout, l->options.close_timeout, a);
  if (r.ec) {
    log::debug("gateway", "polling session ", l->id.substr(0, 8), ": close not answered: ", r.why);
  }
  c.drop();
}

/// Sends, one up request at a time and in this order: queued breaks, the outbox, then the fin once
/// it is wanted and the outbox is empty. Ends when nothing is left or a request failed.
net::awaitable<void> run_sender(std::shared_ptr<poll_link> l) {
  std::vector<std::uint8_t> body;
  while (!l->aborted && !l->send_error) {
    error_code ec;
    if (l->breaks_pending > 0) {
      --l->breaks_pending;
      ec = co_await send_up(*l, {}, poll_control::brk);
    } else if (!l->outbox.empty()) {
      body.clear();
      body.swap(l->outbox);
      l->writer_free.cancel();  // room in the outbox again
      ec = co_await send_up(*l, net::buffer(body), poll_control::none);
    } else if (l->fin_wanted && !l->fin_sent) {
      ec = co_await send_up(*l, {}, poll_control::fin);
      if (!ec) l->fin_sent = true;
    } else {
      break;
    }
    if (ec) l->send_error = ec;
  }
  l->sender_running = false;
  l->writer_free.cancel();
}

class polling_gateway_leg final : public gateway_leg {
 public:
  explicit polling_gateway_leg(std::shared_ptr<poll_link> l) : link_(std::move(l)) {}
  ~polling_gateway_leg() override { close(); }

  net::awaitable<std::pair<error_code, std::size_t>> read_some(net::mutable_buffer into,
                                                               net::cancellation_slot cancel_slot) override {
    poll_link& l = *link_;
    watch(cancel_slot, l.down);
    unsigned lost = 0;
    std::pair<error_code, std::size_t> out{};
    while (l.ready_at == l.ready.size()) {
      if (l.peer_fin) {
        out.first = net::error::eof;
        break;
      }
      if (l.aborted) {
        out.first = net::error::operation_aborted;
        break;
      }
      const std::string head = tunnel::poll_down_request(l.target, l.id, l.seq.down());
      poll_answer a;
      const exchange_result r =
          co_await exchange(l.route, l.down, head, {}, l.options.down_timeout, l.options.connect_timeout, a);
      if (l.aborted) {
        out.first = net::error::operation_aborted;
        break;
      }
      if (r.ec) {
        // The answer was lost: the gateway keeps chunk M until we ask for M+1, so ask again.
        if (++lost > l.options.max_lost) {
          log::info("gateway", "polling session ", l.id.substr(0, 8), ": down seq ", l.seq.down(), " lost ", lost,
                    " times, last ", r.why);
          out.first = r.ec;
          break;
        }
        continue;
      }
      if (proxy_lost(a) && ++lost <= l.options.max_lost) continue;
      lost = 0;
      if (!l.seq.down_answered(a)) {
        l.failed = a.status == 409 || a.status == 404;
        log::info("gateway", "polling session ", l.id.substr(0, 8), ": down seq ", l.seq.down(), " answered ", a.status,
                  " ", body_text(a));
        out.first = net::error::connection_reset;
        break;
      }
      if (a.control == poll_control::fin) l.peer_fin = true;
      l.ready = std::move(a.body);
      l.ready_at = 0;
    }
    if (!out.first) {
      const std::size_t n = std::min(into.size(), l.ready.size() - l.ready_at);
      std::memcpy(into.data(), l.ready.data() + l.ready_at, n);
      l.ready_at += n;
      out.second = n;
    }
    if (cancel_slot.is_connected()) cancel_slot.clear();
    co_return out;
  }

  /// Write-behind: the bytes are taken into the outbox (at most one body's worth waits beside the
  /// request under way) and sent by the sender; a failure of theirs is the next call's error.
  net::awaitable<std::pair<error_code, std::size_t>> write(net::const_buffer bytes,
                                                           net::cancellation_slot cancel_slot) override {
    poll_link& l = *link_;
    watch(cancel_slot, l.up);
    const auto* data = static_cast<const std::uint8_t*>(bytes.data());
    std::size_t done = 0;
    error_code ec;
    while (done < bytes.size()) {
      if (l.aborted) {
        ec = net::error::operation_aborted;
        break;
      }
      if (l.send_error) {
        ec = l.send_error;
        break;
      }
      const std::size_t room = tunnel::poll_max_body - std::min(tunnel::poll_max_body, l.outbox.size());
      if (room == 0) {
        ec = co_await wait_for_sender();
        if (ec) break;
        continue;
      }
      const std::size_t n = std::min(room, bytes.size() - done);
      l.outbox.insert(l.outbox.end(), data + done, data + done + n);
      done += n;
      start_sender();
    }
    if (cancel_slot.is_connected()) cancel_slot.clear();
    co_return std::pair{ec, done};
  }

  net::awaitable<error_code> shutdown_send() override {
    poll_link& l = *link_;
    l.fin_wanted = true;
    start_sender();
    while (!l.fin_sent && !l.send_error && !l.aborted) {
      if (const error_code ec = co_await wait_for_sender(); ec) co_return ec;
    }
    if (l.send_error) co_return l.send_error;
    if (!l.fin_sent) co_return error_code(net::error::operation_aborted);
    co_return error_code{};
  }

  void cancel(error_code& ec) noexcept override {
    ec = {};
    link_->abort_io();
  }

  void close() noexcept override {
    poll_link& l = *link_;
    if (l.closed) return;
    l.closed = true;
    std::optional<tunnel::client_stream> kept;
    for (poll_conn* c : {&l.up, &l.down}) {
      if (!c->busy && c->stream) {
        if (!kept) {
          kept = std::move(c->stream);
          c->stream.reset();
        } else {
          c->drop();
        }
      }
    }
    l.abort_io();
    // Both fins, or a session the gateway ended, leave nothing to release; otherwise the gateway
    // closes the upstream now rather than at its polling_idle.
    if (l.failed || (l.fin_sent && l.peer_fin)) {
      if (kept) kept->close();
      return;
    }
    try {
      net::co_spawn(l.ex, send_close(link_, std::move(kept)), net::detached);
    } catch (const std::exception& e) {
      log::debug("gateway", "polling close not sent: ", e.what());
    }
  }

  void send_break() noexcept override {
    poll_link& l = *link_;
    if (l.aborted || l.fin_wanted) return;
    ++l.breaks_pending;  // goes ahead of the bytes not sent yet
    start_sender();
  }

 private:
  /// A deadline's slot given by the caller ends the request under way on `c`.
  static void watch(net::cancellation_slot& slot, poll_conn& c) {
    if (slot.is_connected()) {
      poll_conn* raw = &c;
      slot.assign([raw](net::cancellation_type) { raw->abort(); });
    }
  }

  void start_sender() noexcept {
    poll_link& l = *link_;
    if (l.sender_running || l.aborted || l.send_error) return;
    try {
      l.sender_running = true;
      net::co_spawn(l.ex, run_sender(link_), net::detached);
    } catch (const std::exception& e) {
      l.sender_running = false;
      l.send_error = make_error_code(boost::system::errc::not_enough_memory);
      log::warn("gateway", "polling sender not started: ", e.what());
    }
  }

  /// Until the sender took the outbox, finished a request or ended.
  net::awaitable<error_code> wait_for_sender() {
    poll_link& l = *link_;
    l.writer_free.expires_at(net::steady_timer::time_point::max());
    co_await l.writer_free.async_wait(use_ec);
    if (l.aborted) co_return error_code(net::error::operation_aborted);
    co_return l.send_error;
  }

  std::shared_ptr<poll_link> link_;
};

}  // namespace

open_refusal refusal_of_open(unsigned status, bool from_gateway) noexcept {
  if (status == 407) return {outcome::general_failure, "proxy_auth"};
  if (!from_gateway) return {outcome::general_failure, "polling"};
  switch (status) {
    case 400: return {outcome::malformed, ""};
    case 401: return {outcome::bad_credentials, "gateway_auth"};
    case 403: return {outcome::denied, ""};
    case 502: return {outcome::host_unreachable, ""};
    case 504: return {outcome::connect_timeout, ""};
    default: return {outcome::general_failure, "polling"};
  }
}

polling_transport::polling_transport(polling_options options) : options_(std::move(options)) {}

net::awaitable<opened_tunnel> polling_transport::open(const gateway_route& route, const tunnel_request& what,
                                                      phase_deadline& dl) const {
  opened_tunnel out;
  if (what.udp) {
    out.failed_hop = "polling";
    out.detail = "UDP associations are not carried by the polling transport";
    co_return out;
  }
  route_connection conn = co_await route.connect(dl);
  if (conn.result != outcome::success || !conn.stream) {
    out.result = conn.result == outcome::success ? outcome::general_failure : conn.result;
    out.failed_hop = conn.failed_hop;
    out.detail = conn.detail;
    co_return out;
  }
  tunnel::poll_client_target target;
  target.path = options_.path;
  target.authority = conn.style.authority;
  target.absolute_form = conn.style.absolute_form;
  target.authorization = what.authorization;
  target.proxy_authorization = conn.style.proxy_authorization;
  const std::string request = tunnel::poll_open_request(target, what.target);
  tunnel::client_stream& stream = *conn.stream;
  out.failed_hop = "polling";
  auto [wec, written] = co_await net::async_write(stream, net::buffer(request), dl.token());
  poll_answer_reader reader;
  error_code ec = wec;
  std::array<std::uint8_t, 1024> buf{};
  while (!ec) {
    auto [rec, n] = co_await stream.async_read_some(net::buffer(buf), dl.token());
    ec = rec;
    if (ec) break;
    const auto fed = reader.feed(std::span<const std::uint8_t>(buf.data(), n));
    if (fed.now == poll_answer_reader::state::done) break;
    if (fed.now == poll_answer_reader::state::malformed) {
      out.detail = concat("the open's answer is not HTTP the gateway writes: ", reader.what());
      stream.close();
      co_return out;
    }
  }
  stream.close();  // the open's connection ends with its answer
  if (ec) {
    out.result = dl.expired() ? outcome::connect_timeout : outcome::general_failure;
    out.detail = dl.expired() ? std::string("no answer to the polling open in time")
                              : concat("polling open failed: ", ec.message());
    co_return out;
  }
  const poll_answer& a = reader.answer();
  const std::string id(a.body.begin(), a.body.end());
  if (a.status != 200 || !tunnel::is_poll_id(id)) {
    const open_refusal refusal = refusal_of_open(a.status == 200 ? 0 : a.status, !a.result.empty());
    out.result = refusal.result;
    out.failed_hop = refusal.failed_hop;
    out.detail = a.status == 200 ? std::string("the open's answer holds no session id")
                                 : concat("status ", a.status, " ", escaped(a.reason), ": ", body_text(a));
    if (a.status == 407) {
      out.detail += concat(" (Proxy-Authenticate: ", escaped(a.proxy_authenticate), ")");
    }
    co_return out;
  }
  out.result = outcome::success;
  out.failed_hop.clear();
  const auto ex = co_await net::this_coro::executor;
  auto l = std::make_shared<poll_link>(route, options_, std::move(target), id, ex);
  out.leg = std::make_unique<polling_gateway_leg>(std::move(l));
  co_return out;
}

}  // namespace edgerelay::proxy::gateway
