// The polling door: the request loop of a connection, credentials, the open's target, and the
// client leg that hands the pipeline's relay to the session's state.
#include "proxy/inbound/polling_door.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/read.hpp>

#include "proxy/core/write_all.hpp"
#include "proxy/inbound/credentials.hpp"
#include "proxy/inbound/polling_sessions.hpp"
#include "proxy/inbound/websocket_door.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/connector.hpp"
#include "tunnel/basic_auth.hpp"
#include "tunnel/polling_codec.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;

/// A long poll is answered empty after this long at most, well inside the idle expiry, so a
/// waiting client never lets its session expire and proxies' read timeouts (Squid: 15 min) never fire.
std::chrono::milliseconds hold_of(const config::listener_config& l) {
  return std::min<std::chrono::milliseconds>(20s, l.polling_idle / 2);
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

door_result refusal(unsigned status, outcome why, std::string_view reason) {
  return door_closed{why, websocket_error_reply(status, why, reason)};
}

/// The client side of a polling session: the id (or the refusal) on the open request's
/// connection, then the session's bytes.
class polling_door_leg final : public door_leg {
 public:
  polling_door_leg(tunnel::client_stream& client, const session_context& ctx, std::shared_ptr<polling_session> s,
                   std::string user)
      : client_(client), ctx_(ctx), session_(std::move(s)), user_(std::move(user)) {}

  net::awaitable<bool> answer(outcome result, phase_deadline& dl) override {
    const auto limit = ctx_.snapshot->cfg.limits.handshake_timeout;
    std::optional<std::string> id;
    if (result == outcome::success) {
      id = ctx_.services->polling->add(session_, client_.get_executor(), user_, ctx_.peer.address());
      if (!id) {
        log::error("polling", "no session id for ", to_string(ctx_.peer), ": the CSPRNG failed");
        result = outcome::general_failure;
      }
    }
    if (!id) {
      const std::vector<std::uint8_t> no =
          websocket_error_reply(websocket_status(result), result, concat(to_string(result)));
      co_await write_all(client_, no, dl, limit);
      close_open_connection();
      co_return false;
    }
    session_->start(*id);
    // The open's connection ends here: the session's requests come on connections of their own.
    const std::string ok = tunnel::poll_response(200, {}, *id, false, "text/plain");
    co_await write_all(client_, bytes_of(ok), dl, limit);
    close_open_connection();
    co_return true;
  }

  net::awaitable<std::pair<error_code, std::size_t>> read_some(net::mutable_buffer into,
                                                               net::cancellation_slot slot) override {
    return session_->leg_read(into, slot);
  }
  net::awaitable<std::pair<error_code, std::size_t>> write(net::const_buffer bytes,
                                                           net::cancellation_slot slot) override {
    return session_->leg_write(bytes, slot);
  }
  net::awaitable<error_code> shutdown_send() override {
    session_->leg_shutdown_send();
    co_return error_code{};
  }
  void cancel(error_code& ec) noexcept override {
    ec = {};
    session_->leg_cancel();
  }
  void carry_breaks(backend_hold* hold) noexcept override { session_->carry_breaks(hold); }
  void close() noexcept override { session_->leg_closed(); }

 private:
  void close_open_connection() noexcept {
    // Nothing may follow the open on its connection (the door refused leftover bytes), so a
    // half-close then close cannot reset the answer away.
    error_code ec;
    client_.socket().shutdown(tcp::socket::shutdown_send, ec);
    client_.close();
  }

  tunnel::client_stream& client_;
  const session_context& ctx_;
  std::shared_ptr<polling_session> session_;
  std::string user_;
};

/// The user a request speaks for: the certificate's, Basic's (checked) on a password listener,
/// else anonymous. nullopt: bad or missing credentials.
net::awaitable<std::optional<std::string>> user_of(const session_context& ctx, const tunnel::poll_request& req,
                                                   access_record& rec) {
  if (rec.user_from_certificate) co_return rec.user;
  if (ctx.listener->auth != config::auth_mode::password) co_return std::string();
  if (!req.authorization) co_return std::nullopt;
  const auto parsed = tunnel::parse_basic_auth(*req.authorization);
  const auto* creds = std::get_if<tunnel::credentials>(&parsed);
  if (creds == nullptr) co_return std::nullopt;
  record_claimed_user(rec, creds->user);
  const bool ok = co_await check_credentials(ctx, creds->user, creds->password, rec);
  if (!ok) co_return std::nullopt;
  co_return creds->user;
}

/// The open's request: the target, and the session's client leg.
door_result open_session(const session_context& ctx, tunnel::client_stream& client, tunnel::poll_request& req,
                         std::string user, access_record& rec) {
  request r;
  rec.target = req.target;
  if (req.target.starts_with("backend:")) {
    const config::backend_config* b = ctx.snapshot->find_backend(std::string_view(req.target).substr(8));
    if (b == nullptr) return refusal(400, outcome::malformed, "no such backend");
    r.where = backend_target(*b);
    rec.target = concat(b->name, ':', r.where.port);
  } else {
    const std::optional<tunnel::authority_target> a = tunnel::parse_authority(req.target);
    if (!a) return refusal(400, outcome::malformed, "bad target (expected host:port or backend:NAME)");
    r.where = from_authority(*a);
    rec.target = tunnel::to_string(*a);
  }
  auto session = std::make_shared<polling_session>(client.get_executor(), *ctx.services->polling,
                                                   ctx.listener->polling_idle, hold_of(*ctx.listener), rec.client);
  r.client_leg = std::make_unique<polling_door_leg>(client, ctx, std::move(session), std::move(user));
  return r;
}

/// `n` body bytes: what came behind the head first, then from the connection.
net::awaitable<std::optional<std::string>> read_body(tunnel::client_stream& client, std::vector<std::uint8_t>& carry,
                                                     std::size_t n, phase_deadline& dl,
                                                     std::chrono::milliseconds limit) {
  std::string body;
  const std::size_t from_carry = std::min(n, carry.size());
  body.assign(carry.begin(), carry.begin() + static_cast<std::ptrdiff_t>(from_carry));
  carry.erase(carry.begin(), carry.begin() + static_cast<std::ptrdiff_t>(from_carry));
  if (body.size() < n) {
    const std::size_t have = body.size();
    body.resize(n);
    dl.start(limit);
    auto [ec, got] = co_await net::async_read(client, net::buffer(body.data() + have, n - have), dl.token());
    dl.stop();
    if (ec) co_return std::nullopt;
  }
  co_return body;
}

/// The next request head on a kept connection, or nullopt when the client closed, failed, sent
/// garbage or waited longer than `limit`.
net::awaitable<std::optional<tunnel::request_head>> next_head(tunnel::client_stream& client,
                                                              std::vector<std::uint8_t>& carry, phase_deadline& dl,
                                                              std::chrono::milliseconds limit) {
  tunnel::request_head_reader reader;
  tunnel::head_result r = reader.feed(carry);
  std::array<std::uint8_t, 4096> buf;
  dl.start(limit);
  while (std::holds_alternative<tunnel::need_more>(r)) {
    auto [ec, n] = co_await client.async_read_some(net::buffer(buf), dl.token());
    if (ec || n == 0) {
      dl.stop();
      co_return std::nullopt;
    }
    r = reader.feed(std::span<const std::uint8_t>(buf.data(), n));
  }
  dl.stop();
  auto* parsed = std::get_if<tunnel::parsed<tunnel::request_head>>(&r);
  if (parsed == nullptr) co_return std::nullopt;
  const auto rest = reader.leftover();
  carry.assign(rest.begin(), rest.end());
  co_return std::move(parsed->value);
}

/// Runs one up, down or close request on its session's worker.
net::awaitable<poll_reply> run_on_owner(std::shared_ptr<polling_session> s, tunnel::poll_request req,
                                        std::string body) {
  switch (req.op) {
    case tunnel::poll_op::up: co_return co_await s->up(req.seq, std::move(body), req.control);
    case tunnel::poll_op::down: co_return co_await s->down(req.seq);
    case tunnel::poll_op::close: co_return s->close_by_client();
    case tunnel::poll_op::open: break;
  }
  co_return poll_reply{tunnel::poll_error_response(400, "bad polling request"), false};
}

}  // namespace

bool is_polling_request(const session_context& ctx, const tunnel::request_head& head) {
  const auto& p = ctx.listener->protocols;
  return std::find(p.begin(), p.end(), config::protocol::polling) != p.end() &&
         tunnel::is_poll_path(head, ctx.listener->websocket_path);
}

net::awaitable<door_result> open_polling(const session_context& ctx, tunnel::client_stream& client,
                                         tunnel::request_head head, std::span<const std::uint8_t> leftover,
                                         access_record& rec, phase_deadline& dl) {
  rec.protocol = "polling";
  const config::limits_config& limits = ctx.snapshot->cfg.limits;
  std::vector<std::uint8_t> carry(leftover.begin(), leftover.end());
  for (;;) {
    rec.target.clear();
    auto checked = tunnel::parse_poll_request(head, ctx.listener->websocket_path);
    if (auto* no = std::get_if<tunnel::poll_refusal>(&checked)) {
      co_return refusal(no->status, outcome::malformed, no->reason);
    }
    tunnel::poll_request& req = std::get<tunnel::poll_request>(checked);
    dl.start(limits.handshake_timeout);  // the credential check
    std::optional<std::string> user = co_await user_of(ctx, req, rec);
    dl.stop();
    if (!user) {
      co_return refusal(401, outcome::bad_credentials, "credentials needed (Authorization: Basic)");
    }
    if (req.op == tunnel::poll_op::open) {
      if (!carry.empty()) co_return refusal(400, outcome::malformed, "bytes sent behind the open request");
      co_return open_session(ctx, client, req, std::move(*user), rec);
    }
    rec.target = "session";
    std::optional<std::string> body = co_await read_body(client, carry, req.body_size, dl, limits.handshake_timeout);
    if (!body) break;
    const std::optional<polling_sessions::found> found = ctx.services->polling->find(req.id, *user, ctx.peer.address());
    if (!found) {
      co_return refusal(404, outcome::malformed, "no such session");
    }
    const poll_reply reply = co_await net::co_spawn(
        found->owner, run_on_owner(found->session, std::move(req), std::move(*body)), net::use_awaitable);
    const bool written = co_await write_all(client, bytes_of(reply.bytes), dl, limits.handshake_timeout);
    if (!written || !reply.keep_alive || !head.keep_alive) break;
    std::optional<tunnel::request_head> next = co_await next_head(client, carry, dl, ctx.listener->polling_idle);
    if (!next) break;
    if (!is_polling_request(ctx, *next)) {
      co_return refusal(404, outcome::malformed, "only polling requests on this connection");
    }
    head = std::move(*next);
  }
  // Each session writes its own line; a connection that only carried their requests writes none.
  rec.unlogged = true;
  rec.result = outcome::success;
  co_return door_closed{outcome::success};
}

}  // namespace edgerelay::proxy
