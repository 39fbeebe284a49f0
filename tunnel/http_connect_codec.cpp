// Request-head reader over Beast's request_parser<empty_body>, target classification and reply bytes.
#include "tunnel/http_connect_codec.hpp"

#include <arpa/inet.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <iterator>

#include "names/host_name.hpp"
#include "tunnel/http_text.hpp"

namespace edgerelay::tunnel {

namespace http = boost::beast::http;

namespace {

http_error make_error(unsigned status, std::string_view reason) {
  return http_error{status, reason, error_reply(status)};
}

bool is_scheme_char(char c, bool first) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (first) {
    return alpha;
  }
  return alpha || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

/// Port digits: 1-5 decimal digits, value 1-65535.
std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) {
    return std::nullopt;
  }
  unsigned value = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

bool valid_ipv6(std::string_view s) {
  // inet_pton needs a NUL-terminated string; the longest IPv6 text form is 45 characters.
  if (s.empty() || s.size() > 45) {
    return false;
  }
  char text[46] = {};
  s.copy(text, s.size());
  unsigned char out[16];
  return inet_pton(AF_INET6, text, out) == 1;
}

std::string view_to_string(boost::beast::string_view v) {
  return std::string(v.data(), v.size());
}

/// Fills `head` from the finished parser. Returns an error for repeated singleton fields.
std::optional<http_error> extract_head(const http::request_parser<http::empty_body>& parser, request_head& head) {
  const auto& msg = parser.get();
  head.method = view_to_string(msg.method_string());
  head.target = view_to_string(msg.target());
  head.version = msg.version();
  head.fields.reserve(static_cast<std::size_t>(std::distance(msg.begin(), msg.end())));

  auto join = [](std::optional<std::string>& slot, const std::string& value) {
    if (slot) {
      slot->append(", ").append(value);
    } else {
      slot = value;
    }
  };
  for (const auto& f : msg) {
    header_field hf{view_to_string(f.name_string()), view_to_string(f.value())};
    const std::string_view name = hf.name;
    if (detail::iequals(name, "Host")) {
      if (head.host) {
        return make_error(400, "repeated Host field");  // RFC 9112 section 3.2
      }
      head.host = hf.value;
    } else if (detail::iequals(name, "Proxy-Authorization")) {
      if (head.proxy_authorization) {
        return make_error(400, "repeated Proxy-Authorization field");
      }
      head.proxy_authorization = hf.value;
    } else if (detail::iequals(name, "Connection")) {
      join(head.connection, hf.value);
    } else if (detail::iequals(name, "Proxy-Connection")) {
      join(head.proxy_connection, hf.value);
    } else if (detail::iequals(name, "Upgrade")) {
      join(head.upgrade, hf.value);
    } else if (detail::iequals(name, "Transfer-Encoding")) {
      join(head.transfer_encoding, hf.value);
    }
    head.fields.push_back(std::move(hf));
  }
  for (const auto* tokens : {&head.connection, &head.proxy_connection}) {
    if (*tokens && detail::names_framing_field(**tokens)) {
      return make_error(400, "Connection names Content-Length, Transfer-Encoding or Host");
    }
  }
  if (const auto len = parser.content_length()) {
    head.content_length = *len;
  }
  head.chunked = parser.chunked();
  head.keep_alive = parser.keep_alive();
  return std::nullopt;
}

/// Classifies the request-target (RFC 9112 section 3.2) and fills authority/path.
std::optional<http_error> classify(request_head& head) {
  const std::string_view target = head.target;
  if (head.is_connect()) {
    auto auth = parse_authority(target, true);
    if (!auth) {
      return make_error(400, "CONNECT target is not host:port");
    }
    if (head.transfer_encoding || (head.content_length && *head.content_length != 0)) {
      // A CONNECT request has no content; a body here would be read as tunnel data (smuggling).
      return make_error(400, "CONNECT with content");
    }
    head.form = target_form::authority;
    head.authority = std::move(*auth);
    return std::nullopt;
  }
  if (!target.empty() && target.front() == '/') {
    head.form = target_form::origin;
    head.path = head.target;
    return std::nullopt;
  }
  if (target == "*") {
    if (head.method != "OPTIONS") {
      return make_error(400, "asterisk-form on a method other than OPTIONS");
    }
    head.form = target_form::asterisk;
    return std::nullopt;
  }
  const std::size_t sep = target.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return make_error(400, "request-target is not origin-, absolute- or authority-form");
  }
  const std::string_view scheme = target.substr(0, sep);
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (!is_scheme_char(scheme[i], i == 0)) {
      return make_error(400, "bad URI scheme");
    }
  }
  if (target.find('#') != std::string_view::npos) {
    return make_error(400, "fragment in request-target");
  }
  if (!detail::iequals(scheme, "http")) {
    return make_error(501, "absolute-form scheme other than http");
  }
  const std::string_view rest = target.substr(sep + 3);
  const std::size_t auth_end = rest.find_first_of("/?");
  const std::string_view auth_text = rest.substr(0, auth_end);
  if (auth_text.find('@') != std::string_view::npos) {
    return make_error(400, "userinfo in absolute URI");
  }
  auto auth = parse_authority(auth_text, false);
  if (!auth) {
    return make_error(400, "bad authority in absolute URI");
  }
  head.form = target_form::absolute;
  head.authority = std::move(*auth);
  if (auth_end == std::string_view::npos) {
    head.path = "/";
  } else if (rest[auth_end] == '?') {
    head.path = "/" + std::string(rest.substr(auth_end));
  } else {
    head.path = std::string(rest.substr(auth_end));
  }
  return std::nullopt;
}

}  // namespace

std::string to_string(const authority_target& a) {
  std::string out;
  out.reserve(a.host.size() + 8);
  if (a.is_ipv6) {
    out.append("[").append(a.host).append("]");
  } else {
    out.append(a.host);
  }
  out.append(":").append(std::to_string(a.port));
  return out;
}

std::optional<std::string_view> request_head::field(std::string_view name) const {
  for (const auto& f : fields) {
    if (detail::iequals(f.name, name)) {
      return std::string_view(f.value);
    }
  }
  return std::nullopt;
}

std::optional<authority_target> parse_authority(std::string_view text, bool port_required) {
  authority_target out;
  std::string_view port_text;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view v6 = text.substr(1, close - 1);
    if (!valid_ipv6(v6)) {
      return std::nullopt;
    }
    out.host = std::string(v6);
    out.is_ipv6 = true;
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return std::nullopt;
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const std::size_t colon = text.rfind(':');
    const std::string_view host = text.substr(0, colon);
    // One reading for policy and getaddrinfo alike (names/host_name.hpp): "2130706433" goes on as
    // "127.0.0.1", a name as sent. IPv6 needs its brackets here (RFC 3986 section 3.2.2).
    const names::classified_host c = names::classify_host(host);
    if (c.kind == names::host_kind::ipv4) {
      out.host = names::to_dotted_quad(c.v4);
    } else if (c.kind == names::host_kind::dns_name) {
      out.host = std::string(host);
    } else {
      return std::nullopt;
    }
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = text.substr(colon + 1);
    }
  }
  if (!has_port || port_text.empty()) {
    // RFC 3986 section 6.2.3: an empty port means the scheme's default.
    if (port_required) {
      return std::nullopt;
    }
    out.port = 80;
    return out;
  }
  const auto port = parse_port(port_text);
  if (!port) {
    return std::nullopt;
  }
  out.port = *port;
  return out;
}

struct request_head_reader::impl {
  explicit impl(request_reader_options o) : options(o) {
    parser.header_limit(static_cast<std::uint32_t>(options.header_limit));
    // The body is never parsed here (eager off: put() stops after the header block), so the bytes
    // behind the head stay untouched for the caller. Lift the body limit so a large declared
    // Content-Length is not refused at the head stage; the body is streamed by the caller.
    parser.eager(false);
    parser.body_limit(boost::none);
  }

  request_reader_options options;
  http::request_parser<http::empty_body> parser;
  std::vector<std::uint8_t> buf;
  std::size_t used = 0;  ///< length of the head, once parsed
  std::size_t scan = 0;  ///< where the search for CRLFCRLF resumes
  std::size_t consumed = 0;
  bool finished = false;
  bool succeeded = false;
};

request_head_reader::request_head_reader(request_reader_options options) : impl_(std::make_unique<impl>(options)) {}
request_head_reader::~request_head_reader() = default;
request_head_reader::request_head_reader(request_head_reader&&) noexcept = default;
request_head_reader& request_head_reader::operator=(request_head_reader&&) noexcept = default;

head_result request_head_reader::feed(std::span<const std::uint8_t> in) {
  impl& s = *impl_;
  if (s.finished) {
    return make_error(400, "request reader already finished");
  }
  s.buf.insert(s.buf.end(), in.begin(), in.end());
  // Beast sees a head only once its CRLFCRLF has arrived. Fed partial heads it reports some syntax
  // errors early and others only later, so the outcome would depend on how TCP cut the bytes; and
  // its header_limit is counted per stage (start line, then fields), not for the whole head.
  const std::size_t head_end = detail::find_head_end(s.buf, s.scan);
  if (head_end == std::string_view::npos) {
    if (s.buf.size() >= s.options.header_limit) {
      s.finished = true;
      return make_error(431, "request header section too large");
    }
    return need_more{};
  }
  s.finished = true;
  if (head_end > s.options.header_limit) {
    return make_error(431, "request header section too large");
  }
  boost::beast::error_code ec;
  const std::size_t n = s.parser.put(boost::asio::const_buffer(s.buf.data(), head_end), ec);
  if (ec || n != head_end || !s.parser.is_header_done()) {
    return make_error(400, "malformed request head");
  }
  s.used = head_end;
  parsed<request_head> out;
  out.consumed = s.used;
  s.consumed = s.used;
  if (auto err = extract_head(s.parser, out.value)) {
    return std::move(*err);
  }
  if (out.value.version != 10 && out.value.version != 11) {
    return make_error(400, "HTTP version other than 1.0 or 1.1");
  }
  if (out.value.transfer_encoding && !out.value.chunked) {
    return make_error(400, "Transfer-Encoding without final chunked");  // RFC 9112 section 6.3 item 4
  }
  if (s.options.classify_target) {
    if (auto err = classify(out.value)) {
      return std::move(*err);
    }
  }
  s.succeeded = true;
  return out;
}

std::span<const std::uint8_t> request_head_reader::leftover() const {
  if (!impl_->succeeded) {
    return {};
  }
  return std::span<const std::uint8_t>(impl_->buf).subspan(impl_->consumed);
}

std::span<const std::uint8_t> request_head_reader::buffered() const {
  return impl_->buf;
}

std::vector<std::uint8_t> connect_established_reply() {
  return detail::to_bytes("HTTP/1.1 200 Connection established\r\n\r\n");
}

std::string_view reason_phrase(unsigned status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 407: return "Proxy Authentication Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

std::vector<std::uint8_t> error_reply(unsigned status) {
  switch (status) {
    case 400:
    case 403:
    case 404:
    case 405:
    case 407:
    case 431:
    case 500:
    case 501:
    case 502:
    case 503:
    case 504: break;
    default: status = 500;
  }
  const std::string code = std::to_string(status);
  const std::string_view reason = reason_phrase(status);
  std::string body = code;
  body.append(" ").append(reason).append("\n");
  std::string out = "HTTP/1.1 ";
  out.append(code).append(" ").append(reason).append("\r\n");
  if (status == 407) {
    out.append("Proxy-Authenticate: Basic realm=\"edgerelay\"\r\n");
  } else if (status == 405) {
    out.append("Allow: CONNECT\r\n");  // RFC 9110 section 15.5.6: a 405 lists the allowed methods
  }
  out.append("Content-Type: text/plain\r\nContent-Length: ")
      .append(std::to_string(body.size()))
      .append("\r\nConnection: close\r\n\r\n")
      .append(body);
  return detail::to_bytes(out);
}

}  // namespace edgerelay::tunnel
