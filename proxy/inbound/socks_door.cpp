// The SOCKS4/4a/5 door: drives socks::socks_server over the client's stream.
#include <array>

#include <boost/asio/write.hpp>

#include "proxy/inbound/credentials.hpp"
#include "proxy/inbound/door.hpp"

namespace edgerelay::proxy {
namespace {

/// The outcome a closing SOCKS reply stands for (auth status, method refusal or error reply).
outcome outcome_of_closing_reply(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() == 8 && bytes[0] == 0x00) {  // SOCKS4 reply
    return bytes[1] == static_cast<std::uint8_t>(socks::socks4_reply::bad_user) ? outcome::bad_credentials
                                                                                : outcome::malformed;
  }
  if (bytes.size() == 2) {  // method selection 05 FF, or RFC 1929 status 01 01
    return outcome::bad_credentials;
  }
  if (bytes.size() >= 2 && bytes[0] == socks::socks5_version) {
    switch (static_cast<socks::reply_code>(bytes[1])) {
      case socks::reply_code::command_not_supported: return outcome::command_not_supported;
      case socks::reply_code::address_type_not_supported: return outcome::address_type_not_supported;
      default: return outcome::malformed;
    }
  }
  return outcome::malformed;
}

socks::bound_address bound_of(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.local_endpoint(ec);
  return ec ? socks::bound_address{} : socks_bound_address(ep);
}

}  // namespace

socks::bound_address socks_bound_address(const tcp::endpoint& ep) {
  socks::bound_address b;
  b.port = ep.port();
  const auto a = ep.address();
  if (a.is_v4()) {
    b.host = a.to_v4().to_bytes();
  } else if (a.to_v6().is_v4_mapped()) {
    b.host = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).to_bytes();
  } else {
    b.host = a.to_v6().to_bytes();
  }
  return b;
}

net::awaitable<door_result> front_door::negotiate_socks(tunnel::client_stream& client,
                                                        std::span<const std::uint8_t> first, access_record& rec,
                                                        phase_deadline& dl) {
  std::array<std::uint8_t, 2048> buf;
  socks::step_t step = socks_.feed(first);
  for (;;) {
    if (std::holds_alternative<socks::step::need_more>(step)) {
      auto [ec, got] = co_await client.async_read_some(net::buffer(buf), dl.token());
      if (ec || got == 0) co_return door_closed{};
      step = socks_.feed(std::span<const std::uint8_t>(buf.data(), got));
    } else if (auto* send = std::get_if<socks::step::send>(&step)) {
      if (send->close_after) {
        const outcome why = outcome_of_closing_reply(send->bytes);
        co_return door_closed{why, std::move(send->bytes)};
      }
      auto [ec, written] = co_await net::async_write(client, net::buffer(send->bytes), dl.token());
      if (ec) {
        co_return door_closed{outcome::general_failure};
      }
      step = socks_.feed({});
    } else if (auto* auth = std::get_if<socks::step::authenticate>(&step)) {
      const bool ok = co_await check_credentials(ctx_, auth->user, auth->password, rec);
      record_claimed_user(rec, auth->user);
      step = socks_.on_auth(ok);
    } else if (auto* req = std::get_if<socks::step::connect>(&step)) {
      rec.target = socks::to_string(req->target);
      if (socks_.protocol_version() == socks::version::v4) {
        rec.claimed_user = req->user;  // a USERID proves nothing: only real logins may match `users`
      }
      if (req->cmd == socks::command::udp_associate && socks_.protocol_version() == socks::version::v5) {
        co_return udp_handoff{from_socks(req->target)};
      }
      co_return request{.cmd = req->cmd, .where = from_socks(req->target), .client_leg = nullptr};
    } else {
      co_return door_closed{};  // failed: nothing can be replied
    }
  }
}

door_reply front_door::socks_answer(outcome result, const tcp::socket* upstream) {
  const socks::bound_address bound =
      result == outcome::success && upstream != nullptr ? bound_of(*upstream) : socks::bound_address{};
  auto reply = socks_.on_connect(to_socks5_reply(result), bound);
  if (auto* send = std::get_if<socks::step::send>(&reply)) {
    return door_reply{.bytes = std::move(send->bytes)};
  }
  return door_reply{};
}

}  // namespace edgerelay::proxy
