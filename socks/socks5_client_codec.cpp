// SOCKS5 client handshake: greeting, optional RFC 1929 login, CONNECT, reply.
#include "socks/socks5_client_codec.hpp"

#include <utility>

namespace edgerelay::socks {

std::string_view to_string(client_failure f) noexcept {
  switch (f) {
    case client_failure::refused: return "refused";
    case client_failure::auth_rejected: return "credentials rejected";
    case client_failure::auth_required: return "authentication required";
    case client_failure::protocol: return "protocol error";
  }
  return "?";
}

parse_result<std::uint8_t> parse_method_selection(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{2};
  }
  if (in[0] != socks5_version) {
    return protocol_error{reply_code::general_failure, "method selection version is not 5"};
  }
  if (in.size() < 2) {
    return need_more{2};
  }
  return parsed<std::uint8_t>{in[1], 2};
}

parse_result<std::uint8_t> parse_auth_status(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{2};
  }
  if (in[0] != userpass_version) {
    return protocol_error{reply_code::general_failure, "auth status version is not 1"};
  }
  if (in.size() < 2) {
    return need_more{2};
  }
  return parsed<std::uint8_t>{in[1], 2};
}

parse_result<socks5_reply> parse_socks5_reply(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{5};
  }
  if (in[0] != socks5_version) {
    return protocol_error{reply_code::general_failure, "reply version is not 5"};
  }
  if (in.size() < 4) {
    return need_more{5};
  }
  std::size_t address_len = 0;
  switch (static_cast<address_type>(in[3])) {
    case address_type::ipv4: address_len = 4; break;
    case address_type::ipv6: address_len = 16; break;
    case address_type::domain:
      if (in.size() < 5) {
        return need_more{5};
      }
      if (in[4] == 0) {
        return protocol_error{reply_code::general_failure, "reply names an empty host"};
      }
      address_len = 1 + static_cast<std::size_t>(in[4]);
      break;
    default: return protocol_error{reply_code::address_type_not_supported, "reply address type is not 1, 3 or 4"};
  }
  const std::size_t total = 4 + address_len + 2;
  if (in.size() < total) {
    return need_more{total};
  }
  socks5_reply r;
  r.rep = in[1];
  const auto addr = in.subspan(4, address_len);
  if (address_len == 4) {
    ipv4_bytes v4{};
    std::copy(addr.begin(), addr.end(), v4.begin());
    r.bound = v4;
  } else if (address_len == 16) {
    ipv6_bytes v6{};
    std::copy(addr.begin(), addr.end(), v6.begin());
    r.bound = v6;
  }
  r.port = static_cast<std::uint16_t>((in[total - 2] << 8U) | in[total - 1]);
  return parsed<socks5_reply>{r, total};
}

socks5_client::socks5_client(socks5_client_options options, target_address target)
    : options_(std::move(options)), target_(std::move(target)) {}

std::vector<std::uint8_t> socks5_client::start() {
  phase_ = phase::method;
  wanted_ = 2;
  if (options_.user.empty()) {
    return {socks5_version, 0x01, static_cast<std::uint8_t>(method::no_auth)};
  }
  return {socks5_version, 0x02, static_cast<std::uint8_t>(method::no_auth),
          static_cast<std::uint8_t>(method::username_password)};
}

std::size_t socks5_client::wanted() const noexcept {
  return wanted_;
}

std::span<const std::uint8_t> socks5_client::leftover() const noexcept {
  if (phase_ != phase::connected) {
    return {};
  }
  return buffer_;
}

client_step_t socks5_client::fail(client_failure why, std::uint8_t code, std::string_view what) {
  phase_ = phase::failed;
  wanted_ = 0;
  buffer_.clear();
  return client_step::failed{why, code, what};
}

client_step_t socks5_client::feed(std::span<const std::uint8_t> in) {
  if (phase_ == phase::connected) {
    buffer_.insert(buffer_.end(), in.begin(), in.end());
    return client_step::need_more{};
  }
  if (phase_ == phase::failed || phase_ == phase::greeting) {
    return client_step::failed{client_failure::protocol, 0, "fed outside a handshake"};
  }
  buffer_.insert(buffer_.end(), in.begin(), in.end());
  return advance();
}

namespace {

/// Drops a message's bytes from the front of the buffer.
void consume(std::vector<std::uint8_t>& buffer, std::size_t n) {
  buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
}

std::size_t missing(const need_more& m, std::size_t have) {
  return m.at_least > have ? m.at_least - have : 1;
}

}  // namespace

client_step_t socks5_client::send_request() {
  auto request = encode_socks5_request(command::connect, target_);
  if (request.empty()) {
    return fail(client_failure::protocol, 0, "target cannot be sent in a SOCKS5 request");
  }
  phase_ = phase::reply;
  wanted_ = 5;  // VER REP RSV ATYP and the first address byte, which says how long the rest is
  return client_step::send{std::move(request)};
}

client_step_t socks5_client::advance() {
  if (phase_ == phase::method) {
    const auto r = parse_method_selection(buffer_);
    if (const auto* more = std::get_if<need_more>(&r)) {
      wanted_ = missing(*more, buffer_.size());
      return client_step::need_more{};
    }
    if (const auto* e = std::get_if<protocol_error>(&r)) {
      return fail(client_failure::protocol, 0, e->what);
    }
    const auto& m = std::get<parsed<std::uint8_t>>(r);
    const std::uint8_t chosen = m.value;
    consume(buffer_, m.consumed);
    if (chosen == static_cast<std::uint8_t>(method::username_password) && !options_.user.empty()) {
      auto login = encode_userpass_request(options_.user, options_.password);
      if (login.empty()) {
        return fail(client_failure::auth_required, chosen, "user or password longer than 255 bytes");
      }
      phase_ = phase::auth;
      wanted_ = 2;
      return client_step::send{std::move(login)};
    }
    if (chosen == static_cast<std::uint8_t>(method::no_auth)) {
      return send_request();
    }
    if (chosen == static_cast<std::uint8_t>(method::no_acceptable) ||
        chosen == static_cast<std::uint8_t>(method::username_password)) {
      return fail(client_failure::auth_required, chosen, "server accepts none of the offered methods");
    }
    return fail(client_failure::protocol, chosen, "server chose a method that was not offered");
  }
  if (phase_ == phase::auth) {
    const auto r = parse_auth_status(buffer_);
    if (const auto* more = std::get_if<need_more>(&r)) {
      wanted_ = missing(*more, buffer_.size());
      return client_step::need_more{};
    }
    if (const auto* e = std::get_if<protocol_error>(&r)) {
      return fail(client_failure::protocol, 0, e->what);
    }
    const auto& s = std::get<parsed<std::uint8_t>>(r);
    const std::uint8_t status = s.value;
    consume(buffer_, s.consumed);
    if (status != 0) {
      return fail(client_failure::auth_rejected, status, "server rejected the user name or password");
    }
    return send_request();
  }
  const auto r = parse_socks5_reply(buffer_);
  if (const auto* more = std::get_if<need_more>(&r)) {
    wanted_ = missing(*more, buffer_.size());
    return client_step::need_more{};
  }
  if (const auto* e = std::get_if<protocol_error>(&r)) {
    return fail(client_failure::protocol, 0, e->what);
  }
  const auto& reply = std::get<parsed<socks5_reply>>(r);
  if (reply.value.rep != static_cast<std::uint8_t>(reply_code::succeeded)) {
    return fail(client_failure::refused, reply.value.rep, "server refused the request");
  }
  const socks5_reply value = reply.value;
  consume(buffer_, reply.consumed);
  phase_ = phase::connected;
  wanted_ = 0;
  return client_step::connected{value.bound, value.port};
}

}  // namespace edgerelay::socks
