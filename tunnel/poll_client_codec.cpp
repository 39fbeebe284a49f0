// The polling client's requests, answer reader and sequence bookkeeping.
#include "tunnel/poll_client_codec.hpp"

#include <algorithm>

#include "tunnel/http_text.hpp"

namespace edgerelay::tunnel {
namespace {

using detail::iequals;
using detail::trim_ows;

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == ':';
}

std::optional<std::uint64_t> decimal(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

/// The request line and the fields every polling request carries.
std::string start(const poll_client_target& t, std::string_view method, std::string_view rest) {
  std::string out(method);
  out += ' ';
  if (t.absolute_form) out.append("http://").append(t.authority);
  out.append(t.path).append("/poll/").append(rest).append(" HTTP/1.1\r\nHost: ").append(t.authority);
  out.append("\r\nCache-Control: no-store\r\n");
  if (!t.authorization.empty()) out.append("Authorization: ").append(t.authorization).append("\r\n");
  if (t.absolute_form && !t.proxy_authorization.empty()) {
    out.append("Proxy-Authorization: ").append(t.proxy_authorization).append("\r\n");
  }
  return out;
}

}  // namespace

std::string poll_query_encode(std::string_view target) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : target) {
    if (unreserved(c)) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += hex[b >> 4];
      out += hex[b & 0x0f];
    }
  }
  return out;
}

std::string poll_open_request(const poll_client_target& t, std::string_view target) {
  std::string out = start(t, "POST", "open?target=" + poll_query_encode(target));
  out.append("Content-Length: 0\r\n\r\n");
  return out;
}

std::string poll_up_head(const poll_client_target& t, std::string_view id, std::uint64_t seq, std::size_t body_size,
                         poll_control control) {
  std::string rest(id);
  rest.append("/up?seq=").append(std::to_string(seq));
  std::string out = start(t, "POST", rest);
  out.append("Content-Type: application/octet-stream\r\nContent-Length: ").append(std::to_string(body_size));
  out.append("\r\n");
  if (control == poll_control::fin) out.append("Edgerelay-Control: fin\r\n");
  if (control == poll_control::brk) out.append("Edgerelay-Control: break\r\n");
  out.append("\r\n");
  return out;
}

std::string poll_down_request(const poll_client_target& t, std::string_view id, std::uint64_t seq) {
  std::string rest(id);
  rest.append("/down?seq=").append(std::to_string(seq));
  return start(t, "GET", rest).append("\r\n");
}

std::string poll_close_request(const poll_client_target& t, std::string_view id) {
  std::string rest(id);
  rest.append("/close");
  return start(t, "POST", rest).append("Content-Length: 0\r\n\r\n");
}

poll_answer_reader::poll_answer_reader(std::size_t body_limit, std::size_t head_limit)
    : body_limit_(body_limit), head_limit_(head_limit) {}

poll_answer_reader::fed poll_answer_reader::feed(std::span<const std::uint8_t> in) {
  fed out;
  while (state_ == state::need_more && out.consumed < in.size()) {
    const auto rest = in.subspan(out.consumed);
    if (!in_body_) {
      // Byte by byte up to the head's end, so not a byte of the body is scanned as head.
      head_.push_back(rest.front());
      ++out.consumed;
      const std::size_t end = detail::find_head_end(head_, scan_);
      if (end == std::string::npos) {
        if (head_.size() > head_limit_) {
          state_ = state::malformed;
          what_ = "answer head too long";
        }
        continue;
      }
      state_ = parse_head();
      if (state_ == state::need_more && body_size_ == 0) state_ = state::done;
      continue;
    }
    const std::size_t take =
        static_cast<std::size_t>(std::min<std::uint64_t>(body_size_ - answer_.body.size(), rest.size()));
    answer_.body.insert(answer_.body.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(take));
    out.consumed += take;
    if (answer_.body.size() == body_size_) state_ = state::done;
  }
  out.now = state_;
  return out;
}

poll_answer_reader::state poll_answer_reader::parse_head() {
  const std::string_view text(reinterpret_cast<const char*>(head_.data()), head_.size());  // NOLINT: bytes as text
  std::size_t eol = text.find("\r\n");
  const std::string_view line = text.substr(0, eol);
  // "HTTP/1.x SSS reason"
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    what_ = "not an HTTP/1.x status line";
    return state::malformed;
  }
  const auto status = decimal(line.substr(9, 3));
  if (!status || *status < 100) {
    what_ = "bad status code";
    return state::malformed;
  }
  answer_.status = static_cast<unsigned>(*status);
  answer_.reason = line.size() > 13 ? std::string(line.substr(13)) : std::string();
  answer_.keep_alive = line[7] == '1';
  std::optional<std::uint64_t> length;
  bool chunked = false;
  std::size_t at = eol + 2;
  while (at < text.size()) {
    eol = text.find("\r\n", at);
    const std::string_view field = text.substr(at, eol - at);
    at = eol + 2;
    if (field.empty()) break;
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      what_ = "malformed header field";
      return state::malformed;
    }
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trim_ows(field.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      const auto n = decimal(value);
      if (!n || (length && *length != *n)) {
        what_ = "bad Content-Length";
        return state::malformed;
      }
      length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      chunked = true;
    } else if (iequals(name, "Connection") || iequals(name, "Proxy-Connection")) {
      if (detail::list_contains(value, "close")) answer_.keep_alive = false;
      if (detail::list_contains(value, "keep-alive")) answer_.keep_alive = true;
    } else if (iequals(name, "Edgerelay-Ack")) {
      answer_.ack = decimal(value);
    } else if (iequals(name, "Edgerelay-Seq")) {
      answer_.seq = decimal(value);
    } else if (iequals(name, "Edgerelay-Control")) {
      answer_.control = iequals(value, "fin") ? poll_control::fin : poll_control::none;
    } else if (iequals(name, "Edgerelay-Result")) {
      answer_.result = std::string(value.substr(0, 64));
    } else if (iequals(name, "Proxy-Authenticate")) {
      answer_.proxy_authenticate = std::string(value.substr(0, 200));
    }
  }
  const bool bodiless = answer_.status == 204 || answer_.status == 304 || answer_.status < 200;
  if (bodiless) {
    body_size_ = 0;
  } else if (chunked) {
    what_ = "chunked answer (the gateway always sends Content-Length)";
    return state::malformed;
  } else if (!length) {
    what_ = "answer without Content-Length";
    return state::malformed;
  } else if (*length > body_limit_) {
    what_ = "answer body above the limit";
    return state::malformed;
  } else {
    body_size_ = *length;
  }
  in_body_ = true;
  answer_.body.reserve(static_cast<std::size_t>(body_size_));
  return state::need_more;
}

bool poll_sequence::up_accepted(const poll_answer& a) noexcept {
  if (a.status != 204 || !a.ack || *a.ack != up_) return false;
  ++up_;
  return true;
}

bool poll_sequence::down_answered(const poll_answer& a) noexcept {
  if (a.status != 200 || !a.seq || *a.seq != down_) return false;
  if (!a.body.empty() || a.control == poll_control::fin) ++down_;
  return true;
}

}  // namespace edgerelay::tunnel
