// socks_server: the per-session SOCKS4/4a/5 state machine over the pure codecs.
#include "server.hpp"

#include <utility>

#include "socks4_codec.hpp"
#include "socks5_codec.hpp"

namespace edgerelay::socks {
namespace {

// Longer than any single handshake message (SOCKS4a with both fields at 255 bytes is 520), so
// a need_more beyond it means a codec lost its bound; fail rather than buffer.
constexpr std::size_t max_message = 1024;

template <std::size_t n>
std::vector<std::uint8_t> to_vector(const std::array<std::uint8_t, n>& bytes) {
  return {bytes.begin(), bytes.end()};
}

std::vector<std::uint8_t> socks4_reply_bytes(socks4_reply cd, const bound_address& bound) {
  // The 602SQL client ignores DSTPORT/DSTIP, but other clients print them; IPv6 cannot fit.
  if (const auto* v4 = std::get_if<ipv4_bytes>(&bound.host)) {
    return to_vector(encode_socks4_reply(cd, bound.port, *v4));
  }
  return to_vector(encode_socks4_reply(cd));
}

}  // namespace

socks_server::socks_server(server_options options) : options_(options) {}

step_t socks_server::feed(std::span<const std::uint8_t> in) {
  if (state_ != state::greeting && state_ != state::userpass && state_ != state::request) {
    return fail("socks: feed() in the wrong state");
  }
  const std::size_t unparsed = pending_.size() - consumed_;
  if (in.size() > options_.max_buffered || unparsed > options_.max_buffered - in.size()) {
    return fail("socks: too much input before the handshake ended");
  }
  if (consumed_ != 0) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  pending_.insert(pending_.end(), in.begin(), in.end());
  return advance();
}

step_t socks_server::advance() {
  const std::span<const std::uint8_t> input = std::span<const std::uint8_t>(pending_).subspan(consumed_);
  switch (state_) {
    case state::greeting:
      if (input.empty()) {
        return step::need_more{};
      }
      if (input[0] == socks5_version && options_.accept_socks5) {
        version_ = version::v5;
        return on_greeting(input);
      }
      if (input[0] == socks4_version && options_.accept_socks4) {
        version_ = version::v4;
        state_ = state::request;
        return on_socks4_request(input);
      }
      return fail("socks: unsupported protocol version");
    case state::userpass: return on_userpass(input);
    case state::request: return version_ == version::v4 ? on_socks4_request(input) : on_socks5_request(input);
    default: return fail("socks: input in the wrong state");
  }
}

step_t socks_server::on_greeting(std::span<const std::uint8_t> input) {
  auto result = parse_socks5_greeting(input);
  if (std::holds_alternative<need_more>(result)) {
    return step::need_more{};
  }
  if (std::holds_alternative<protocol_error>(result)) {
    // The version already matched, so the list is empty: no method fits, which 05 FF says.
    return reply(to_vector(encode_method_selection(method::no_acceptable)), true);
  }
  const auto& done = std::get<parsed<socks5_greeting>>(result);
  consumed_ += done.consumed;
  const method wanted = options_.require_password ? method::username_password : method::no_auth;
  if (!done.value.offers(wanted)) {
    return reply(to_vector(encode_method_selection(method::no_acceptable)), true);
  }
  state_ = wanted == method::username_password ? state::userpass : state::request;
  return reply(to_vector(encode_method_selection(wanted)), false);
}

step_t socks_server::on_userpass(std::span<const std::uint8_t> input) {
  if (!input.empty() && input[0] != userpass_version) {
    return fail("socks5: bad username/password version");
  }
  auto result = parse_userpass_request(input);
  if (std::holds_alternative<need_more>(result)) {
    return input.size() > max_message ? fail("socks5: username/password message too long") : step::need_more{};
  }
  if (std::holds_alternative<protocol_error>(result)) {
    return reply(to_vector(encode_auth_status(false)), true);
  }
  auto& done = std::get<parsed<userpass_request>>(result);
  consumed_ += done.consumed;
  state_ = state::authenticating;
  user_ = done.value.user;
  return step::authenticate{std::move(done.value.user), std::move(done.value.password)};
}

step_t socks_server::on_auth(bool ok) {
  if (state_ != state::authenticating) {
    return fail("socks: on_auth() in the wrong state");
  }
  if (!ok) {
    return reply(to_vector(encode_auth_status(false)), true);
  }
  state_ = state::request;
  return reply(to_vector(encode_auth_status(true)), false);
}

step_t socks_server::on_socks5_request(std::span<const std::uint8_t> input) {
  if (!input.empty() && input[0] != socks5_version) {
    return fail("socks5: bad request version");
  }
  auto result = parse_socks5_request(input);
  if (std::holds_alternative<need_more>(result)) {
    return input.size() > max_message ? fail("socks5: request too long") : step::need_more{};
  }
  if (const auto* error = std::get_if<protocol_error>(&result)) {
    return reply(encode_socks5_reply(error->reply, ipv4_bytes{}, 0), true);
  }
  auto& done = std::get<parsed<socks5_request>>(result);
  consumed_ += done.consumed;
  state_ = state::connecting;
  cmd_ = done.value.cmd;
  return step::connect{done.value.cmd, std::move(done.value.target), user_};
}

step_t socks_server::on_socks4_request(std::span<const std::uint8_t> input) {
  auto result = parse_socks4_request(input);
  if (std::holds_alternative<need_more>(result)) {
    return input.size() > max_message ? fail("socks4: request too long") : step::need_more{};
  }
  if (const auto* error = std::get_if<protocol_error>(&result)) {
    // DESIGN section 5: an unknown command and an invalid SOCKS4a host name get 0x5B (the client
    // asked for something we refuse, and a reply tells it so); anything else malformed is closed.
    if (error->reply == reply_code::command_not_supported || error->reply == reply_code::host_unreachable) {
      return reply(to_vector(encode_socks4_reply(socks4_reply::rejected)), true);
    }
    return fail(error->what);
  }
  auto& done = std::get<parsed<socks4_request>>(result);
  consumed_ += done.consumed;
  if (options_.require_password) {
    // SOCKS4 has no password; 0x5D ("user id not confirmed") is the closest refusal.
    return reply(to_vector(encode_socks4_reply(socks4_reply::bad_user)), true);
  }
  state_ = state::connecting;
  cmd_ = done.value.cmd;
  user_ = done.value.user_id;
  return step::connect{done.value.cmd, std::move(done.value.target), user_};
}

step_t socks_server::on_bind_listening(const bound_address& listening) {
  if (state_ != state::connecting || version_ != version::v5 || cmd_ != command::bind) {
    return fail("socks: on_bind_listening() without a SOCKS5 BIND request");
  }
  state_ = state::awaiting_peer;
  return step::send{encode_socks5_reply(reply_code::succeeded,
                                        std::visit([](const auto& host) { return bound_host{host}; }, listening.host),
                                        listening.port),
                    false};
}

step_t socks_server::on_connect(reply_code code, const bound_address& bound) {
  if (state_ != state::connecting && state_ != state::awaiting_peer) {
    return fail("socks: on_connect() in the wrong state");
  }
  const bool ok = code == reply_code::succeeded;
  std::vector<std::uint8_t> bytes;
  if (version_ == version::v4) {
    bytes = socks4_reply_bytes(ok ? socks4_reply::granted : socks4_reply::rejected, bound);
  } else {
    bytes = encode_socks5_reply(code, std::visit([](const auto& host) { return bound_host{host}; }, bound.host),
                                bound.port);
  }
  if (!ok) {
    return reply(std::move(bytes), true);
  }
  state_ = state::established;
  return step::send{std::move(bytes), false};
}

std::span<const std::uint8_t> socks_server::leftover() const {
  if (state_ != state::established) {
    return {};
  }
  return std::span<const std::uint8_t>(pending_).subspan(consumed_);
}

step_t socks_server::reply(std::vector<std::uint8_t> bytes, bool close_after) {
  if (close_after) {
    state_ = state::closed;
  }
  return step::send{std::move(bytes), close_after};
}

step_t socks_server::fail(std::string_view reason) {
  state_ = state::closed;
  return step::failed{reason};
}

}  // namespace edgerelay::socks
