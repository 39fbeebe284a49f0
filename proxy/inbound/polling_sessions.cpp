// Polling sessions: sequence checks, the kept chunk, flow control both ways, idle expiry.
#include "proxy/inbound/polling_sessions.hpp"

#include <algorithm>
#include <cstring>

#include <boost/asio/detached.hpp>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {
namespace {

using tunnel::poll_header;

/// What identifies an up request's content: its control and its body.
std::array<std::uint8_t, 32> digest_of(std::string_view body, tunnel::poll_control control) {
  std::array<std::uint8_t, 32> out{};
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const auto tag = static_cast<unsigned char>(control);
  unsigned int len = 0;
  const bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(md, &tag, 1) == 1 && EVP_DigestUpdate(md, body.data(), body.size()) == 1 &&
                  EVP_DigestFinal_ex(md, out.data(), &len) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) {
    // Never equal to a real digest's comparison partner: a retry is then a conflict, not a duplicate.
    out.fill(0);
    out[0] = 1;
    out[1] = tag;
  }
  return out;
}

/// The id as the operator log shows it: enough to tell sessions apart, not enough to use it.
std::string_view log_id(const std::string& id) {
  return std::string_view(id).substr(0, 8);
}

}  // namespace

net::awaitable<void> wake_list::wait(std::chrono::steady_clock::time_point until) {
  net::steady_timer timer(co_await net::this_coro::executor, until);
  waiting_.push_back(&timer);
  struct unlist {
    std::vector<net::steady_timer*>& from;
    net::steady_timer* t;
    ~unlist() { std::erase(from, t); }
  } guard{waiting_, &timer};
  co_await timer.async_wait(use_ec);
}

void wake_list::notify() noexcept {
  for (net::steady_timer* t : waiting_) {
    t->cancel();
  }
}

/// Counts a request as running; when it ends, it is the session's latest activity.
struct polling_session::in_flight {
  explicit in_flight(polling_session& session) : s(session) {
    ++s.requests_;
    s.touch();
  }
  ~in_flight() {
    --s.requests_;
    s.touch();
  }
  in_flight(const in_flight&) = delete;
  in_flight& operator=(const in_flight&) = delete;
  polling_session& s;
};

polling_session::polling_session(net::any_io_executor owner, polling_sessions& table, std::chrono::milliseconds idle,
                                 std::chrono::milliseconds hold, std::string peer)
    : owner_(std::move(owner)), table_(table), idle_(idle), hold_(hold), peer_(std::move(peer)) {}

void polling_session::start(std::string id) {
  id_ = std::move(id);
  touch();
  net::co_spawn(owner_, watch_idle(shared_from_this()), net::detached);
}

net::awaitable<void> polling_session::watch_idle(std::shared_ptr<polling_session> self) {
  net::steady_timer timer(owner_);
  idle_timer_ = &timer;
  while (!aborted_) {
    timer.expires_at(last_request_ + idle_);
    co_await timer.async_wait(use_ec);
    if (aborted_) break;
    if (requests_ > 0) {
      touch();  // a long poll in progress is activity
      continue;
    }
    if (clock::now() >= last_request_ + idle_) {
      end(net::error::timed_out, "expired (no request within polling_idle)");
    }
  }
  idle_timer_ = nullptr;
  (void)self;  // kept the session alive while the watch ran
}

void polling_session::end(error_code why, std::string_view reason) noexcept {
  if (aborted_) return;
  aborted_ = true;
  end_why_ = why;
  if (!finished_) {
    log::info("polling", "session ", log_id(id_), " from ", peer_, ": ", reason);
  }
  in_ready_.notify();
  in_drained_.notify();
  out_ready_.notify();
  out_room_.notify();
  if (idle_timer_ != nullptr) idle_timer_->cancel();
  if (!id_.empty()) table_.remove(id_);
}

poll_reply polling_session::conflict(std::string_view reason) {
  end(net::error::connection_reset, reason);
  return poll_reply{tunnel::poll_error_response(409, reason, "conflict"), false};
}

poll_reply polling_session::gone() const {
  return poll_reply{tunnel::poll_error_response(404, "no such session"), false};
}

poll_reply polling_session::ack(std::uint64_t seq) const {
  const std::string n = std::to_string(seq);
  const poll_header h[] = {{"Edgerelay-Ack", n}};
  return poll_reply{tunnel::poll_response(204, h, {}, true)};
}

poll_reply polling_session::chunk_reply(std::uint64_t seq, const chunk& c) const {
  const std::string n = std::to_string(seq);
  if (c.fin) {
    const poll_header h[] = {{"Edgerelay-Seq", n}, {"Edgerelay-Control", "fin"}};
    return poll_reply{tunnel::poll_response(200, h, c.bytes, true)};
  }
  const poll_header h[] = {{"Edgerelay-Seq", n}};
  return poll_reply{tunnel::poll_response(200, h, c.bytes, true)};
}

net::awaitable<poll_reply> polling_session::up(std::uint64_t seq, std::string body, tunnel::poll_control control) {
  in_flight running(*this);
  const auto digest = digest_of(body, control);
  if (aborted_) co_return gone();
  if (last_up_ && seq + 1 == up_next_ && *last_up_ == digest) {
    co_return ack(seq);  // a retry of the last accepted request: delivered once already
  }
  if (seq != up_next_) co_return conflict("up seq out of order");
  if (in_fin_) co_return conflict("up after fin");
  if (control == tunnel::poll_control::brk && break_seq_ != seq + 1) {
    // At once, not when the body is accepted: a 602SQL server does not read its socket while the
    // request to be broken runs, so the body may wait for room until the break has done its work.
    // Once per seq: a retry (after a 503 or a lost response) does not break again.
    break_seq_ = seq + 1;
    breaks_.forward("polling", peer_);
  }
  // One body waits in the session at a time: the next is accepted once the relay took the last.
  const auto until = clock::now() + hold_;
  while (!aborted_ && in_off_ < in_.size() && clock::now() < until) {
    co_await in_drained_.wait(until);
  }
  if (aborted_) co_return gone();
  if (last_up_ && seq + 1 == up_next_ && *last_up_ == digest) co_return ack(seq);  // a retry overtook it
  if (seq != up_next_) co_return conflict("up seq out of order");
  if (in_off_ < in_.size()) {
    // The upstream is slow: not accepted; the client sends the same seq again.
    const poll_header h[] = {{"Retry-After", "0"}};
    co_return poll_reply{tunnel::poll_response(503, h, "upstream busy, send again\n", true, "text/plain")};
  }
  in_ = std::move(body);
  in_off_ = 0;
  ++up_next_;
  last_up_ = digest;
  if (control == tunnel::poll_control::fin) {
    in_fin_ = true;
  }
  in_ready_.notify();
  co_return ack(seq);
}

net::awaitable<poll_reply> polling_session::down(std::uint64_t seq) {
  in_flight running(*this);
  if (aborted_) co_return gone();
  if (kept_ && seq + 1 == down_next_) {
    co_return chunk_reply(seq, *kept_);  // the response was lost: the same bytes again
  }
  if (seq != down_next_) co_return conflict("down seq out of order");
  kept_.reset();  // asking for the next chunk acknowledges the last
  if (fin_chunked_) co_return chunk_reply(seq, chunk{{}, true});
  const std::uint64_t turn = ++down_turn_;
  out_ready_.notify();  // a request still waiting for this seq is answered empty: this one replaces it
  const auto until = clock::now() + hold_;
  while (!aborted_ && turn == down_turn_ && out_.empty() && !out_fin_ && clock::now() < until) {
    co_await out_ready_.wait(until);
  }
  if (aborted_) co_return gone();
  if (turn != down_turn_ || seq != down_next_ || (out_.empty() && !out_fin_)) {
    co_return chunk_reply(seq, chunk{});  // nothing came: the client asks for the same seq again
  }
  chunk c;
  const std::size_t n = std::min(out_.size(), tunnel::poll_max_body);
  c.bytes.assign(out_, 0, n);
  out_.erase(0, n);
  c.fin = out_fin_ && out_.empty();
  fin_chunked_ = c.fin;
  kept_ = std::move(c);
  ++down_next_;
  out_room_.notify();
  co_return chunk_reply(seq, *kept_);
}

poll_reply polling_session::close_by_client() {
  in_flight running(*this);
  end(net::error::connection_aborted, "closed by the client");
  return poll_reply{tunnel::poll_response(204, {}, {}, true)};
}

namespace {

/// Makes `slot`'s emission cancel the leg (a phase deadline's), for the length of one operation.
struct slot_hook {
  slot_hook(net::cancellation_slot s, polling_session& session) : slot(s) {
    if (slot.is_connected()) {
      slot.assign([&session](net::cancellation_type) { session.leg_cancel(); });
    }
  }
  ~slot_hook() {
    if (slot.is_connected()) slot.clear();
  }
  slot_hook(const slot_hook&) = delete;
  slot_hook& operator=(const slot_hook&) = delete;
  net::cancellation_slot slot;
};

}  // namespace

net::awaitable<std::pair<error_code, std::size_t>> polling_session::leg_read(net::mutable_buffer into,
                                                                             net::cancellation_slot slot) {
  slot_hook hook(slot, *this);
  for (;;) {
    if (leg_cancelled_) co_return std::pair{error_code(net::error::operation_aborted), std::size_t{0}};
    if (aborted_) co_return std::pair{end_why_, std::size_t{0}};
    if (in_off_ < in_.size()) {
      const std::size_t n = std::min(into.size(), in_.size() - in_off_);
      std::memcpy(into.data(), in_.data() + in_off_, n);
      in_off_ += n;
      if (in_off_ == in_.size()) {
        in_.clear();
        in_off_ = 0;
        in_drained_.notify();
      }
      co_return std::pair{error_code{}, n};
    }
    if (in_fin_) co_return std::pair{error_code(net::error::eof), std::size_t{0}};
    co_await in_ready_.wait(clock::time_point::max());
  }
}

net::awaitable<std::pair<error_code, std::size_t>> polling_session::leg_write(net::const_buffer bytes,
                                                                              net::cancellation_slot slot) {
  slot_hook hook(slot, *this);
  for (;;) {
    if (leg_cancelled_) co_return std::pair{error_code(net::error::operation_aborted), std::size_t{0}};
    if (aborted_) co_return std::pair{end_why_, std::size_t{0}};
    if (out_fin_) co_return std::pair{error_code(net::error::shut_down), std::size_t{0}};
    if (out_.size() < out_limit) {
      out_.append(static_cast<const char*>(bytes.data()), bytes.size());
      out_ready_.notify();
      co_return std::pair{error_code{}, bytes.size()};
    }
    co_await out_room_.wait(clock::time_point::max());
  }
}

void polling_session::leg_shutdown_send() noexcept {
  out_fin_ = true;
  out_ready_.notify();
}

void polling_session::leg_cancel() noexcept {
  leg_cancelled_ = true;
  in_ready_.notify();
  out_room_.notify();
}

void polling_session::leg_closed() noexcept {
  breaks_.attach(nullptr);  // the pipeline's frame, which owns the hold, is ending
  if (aborted_ || finished_) return;
  if (in_fin_ && out_fin_) {
    // Both sides ended cleanly: the client may still fetch what is left, until the idle expiry.
    finished_ = true;
    return;
  }
  end(net::error::operation_aborted, "closed by the gateway");
}

std::optional<std::string> polling_sessions::add(std::shared_ptr<polling_session> s, net::any_io_executor owner,
                                                 std::string user, net::ip::address client) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::array<std::uint8_t, tunnel::poll_id_bytes> raw{};
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
      return std::nullopt;
    }
    std::string id = tunnel::poll_id_text(raw);
    std::lock_guard lock(mu_);
    if (by_id_.contains(id)) continue;
    by_id_.emplace(id, entry{std::move(s), std::move(owner), std::move(user), client});
    return id;
  }
  return std::nullopt;
}

std::optional<polling_sessions::found> polling_sessions::find(std::string_view id, std::string_view user,
                                                              const net::ip::address& client) const {
  std::lock_guard lock(mu_);
  const auto it = by_id_.find(std::string(id));
  if (it == by_id_.end() || it->second.user != user || it->second.client != client) {
    return std::nullopt;
  }
  return found{it->second.session, it->second.owner};
}

void polling_sessions::remove(std::string_view id) noexcept {
  std::lock_guard lock(mu_);
  by_id_.erase(std::string(id));
}

std::size_t polling_sessions::size() const {
  std::lock_guard lock(mu_);
  return by_id_.size();
}

}  // namespace edgerelay::proxy
