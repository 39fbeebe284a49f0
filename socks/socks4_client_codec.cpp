// SOCKS4a client: request build and reply parse.
#include "socks/socks4_client_codec.hpp"

#include <algorithm>
#include <utility>

#include "socks/socks4_codec.hpp"

namespace edgerelay::socks {

parse_result<socks4_reply_message> parse_socks4_reply(std::span<const std::uint8_t> in) {
  if (in.empty()) {
    return need_more{8};
  }
  if (in[0] != 0x00 && in[0] != socks4_version) {
    return protocol_error{reply_code::general_failure, "SOCKS4 reply version is not 0"};
  }
  if (in.size() < 8) {
    return need_more{8};
  }
  socks4_reply_message r;
  r.cd = in[1];
  r.port = static_cast<std::uint16_t>((in[2] << 8U) | in[3]);
  std::copy_n(in.begin() + 4, 4, r.address.begin());
  return parsed<socks4_reply_message>{r, 8};
}

socks4_client::socks4_client(target_address target, std::string user_id)
    : target_(std::move(target)), user_id_(std::move(user_id)) {}

std::vector<std::uint8_t> socks4_client::start() {
  started_ = true;
  auto out = encode_socks4_request(command::connect, target_, user_id_);
  done_ = out.empty();
  return out;
}

std::size_t socks4_client::wanted() const noexcept {
  if (done_ || !started_) {
    return 0;
  }
  return 8 - std::min<std::size_t>(8, buffer_.size());
}

std::span<const std::uint8_t> socks4_client::leftover() const noexcept {
  if (!connected_) {
    return {};
  }
  return buffer_;
}

client_step_t socks4_client::feed(std::span<const std::uint8_t> in) {
  if (connected_) {
    buffer_.insert(buffer_.end(), in.begin(), in.end());
    return client_step::need_more{};
  }
  if (done_ || !started_) {
    return client_step::failed{client_failure::protocol, 0, "fed outside a handshake"};
  }
  buffer_.insert(buffer_.end(), in.begin(), in.end());
  const auto r = parse_socks4_reply(buffer_);
  if (std::holds_alternative<need_more>(r)) {
    return client_step::need_more{};
  }
  done_ = true;
  if (const auto* e = std::get_if<protocol_error>(&r)) {
    buffer_.clear();
    return client_step::failed{client_failure::protocol, 0, e->what};
  }
  const auto& reply = std::get<parsed<socks4_reply_message>>(r);
  const socks4_reply_message value = reply.value;
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(reply.consumed));
  switch (static_cast<socks4_reply>(value.cd)) {
    case socks4_reply::granted: connected_ = true; return client_step::connected{bound_host{value.address}, value.port};
    case socks4_reply::no_identd:
    case socks4_reply::bad_user:
      buffer_.clear();
      return client_step::failed{client_failure::auth_rejected, value.cd, "server rejected the user id"};
    case socks4_reply::rejected:
      buffer_.clear();
      return client_step::failed{client_failure::refused, value.cd, "server refused the request"};
  }
  buffer_.clear();
  return client_step::failed{client_failure::protocol, value.cd, "SOCKS4 reply code is not 5A-5D"};
}

}  // namespace edgerelay::socks
