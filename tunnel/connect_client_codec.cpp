// CONNECT request build and response head read over Beast's response_parser<empty_body>.
#include "tunnel/connect_client_codec.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "tunnel/basic_auth.hpp"
#include "tunnel/http_text.hpp"

namespace edgerelay::tunnel {

namespace http = boost::beast::http;

namespace {

bool splits_head(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace

std::vector<std::uint8_t> connect_request(std::string_view authority, std::string_view user,
                                          std::string_view password) {
  if (authority.empty() || splits_head(authority) || authority.find(' ') != std::string_view::npos ||
      splits_head(user) || splits_head(password) || user.find(':') != std::string_view::npos) {
    return {};
  }
  std::vector<std::uint8_t> out;
  detail::append(out, "CONNECT ");
  detail::append(out, authority);
  detail::append(out, " HTTP/1.1\r\nHost: ");
  detail::append(out, authority);
  detail::append(out, "\r\n");
  if (!user.empty()) {
    detail::append(out, "Proxy-Authorization: ");
    detail::append(out, encode_basic_auth(user, password));
    detail::append(out, "\r\n");
  }
  detail::append(out, "\r\n");
  return out;
}

connect_response_reader::connect_response_reader(std::size_t header_limit) : header_limit_(header_limit) {}

std::size_t connect_response_reader::wanted() const noexcept {
  if (decided_) {
    return 0;
  }
  // The longest tail of what we have that begins a CRLFCRLF tells how much of it is still missing.
  static constexpr std::string_view end = "\r\n\r\n";
  for (std::size_t have = 3; have > 0; --have) {
    if (buf_.size() >= have && std::equal(end.begin(), end.begin() + static_cast<std::ptrdiff_t>(have),
                                          buf_.end() - static_cast<std::ptrdiff_t>(have))) {
      return 4 - have;
    }
  }
  return 4;
}

std::span<const std::uint8_t> connect_response_reader::leftover() const noexcept {
  if (!established_) {
    return {};
  }
  return std::span<const std::uint8_t>(buf_).subspan(head_);
}

connect_result connect_response_reader::feed(std::span<const std::uint8_t> in) {
  if (decided_) {
    if (established_) {
      buf_.insert(buf_.end(), in.begin(), in.end());
      return connect_step::need_more{};
    }
    return connect_step::malformed{"response reader already finished"};
  }
  buf_.insert(buf_.end(), in.begin(), in.end());
  const std::size_t head_end = detail::find_head_end(buf_, scan_);
  if (head_end == std::string_view::npos) {
    if (buf_.size() >= header_limit_) {
      decided_ = true;
      return connect_step::malformed{"response head too large"};
    }
    return connect_step::need_more{};
  }
  decided_ = true;
  head_ = head_end;
  if (head_end > header_limit_) {
    return connect_step::malformed{"response head too large"};
  }
  http::response_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(header_limit_));
  parser.eager(false);
  parser.body_limit(boost::none);
  boost::beast::error_code ec;
  const std::size_t n = parser.put(boost::asio::const_buffer(buf_.data(), head_end), ec);
  if (ec || n != head_end || !parser.is_header_done()) {
    return connect_step::malformed{"malformed response head"};
  }
  const auto& msg = parser.get();
  if (msg.version() != 10 && msg.version() != 11) {
    return connect_step::malformed{"response version other than HTTP/1.0 or 1.1"};
  }
  connect_response r;
  r.status = msg.result_int();
  r.reason = std::string(msg.reason().data(), msg.reason().size());
  if (r.status >= 200 && r.status < 300) {
    // A 2xx to CONNECT starts the tunnel right behind the head; a declared body would be read as
    // tunnel bytes by one side and as a body by the other.
    const auto length = parser.content_length();
    if (parser.chunked() || msg.count(http::field::transfer_encoding) != 0 || (length && *length != 0)) {
      return connect_step::malformed{"2xx response to CONNECT declares a body"};
    }
    established_ = true;
    return connect_step::established{std::move(r)};
  }
  if (r.status == 407) {
    const auto it = msg.find(http::field::proxy_authenticate);
    if (it != msg.end()) {
      r.proxy_authenticate = std::string(it->value().data(), it->value().size());
    }
  }
  return connect_step::refused{std::move(r)};
}

}  // namespace edgerelay::tunnel
