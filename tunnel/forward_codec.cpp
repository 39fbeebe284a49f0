// Forward-proxy head rewriting, the response-head reader over Beast, and the incremental body tracker.
#include "tunnel/forward_codec.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <iterator>
#include <string>

#include "tunnel/http_text.hpp"

namespace edgerelay::tunnel {

namespace http = boost::beast::http;

namespace {

constexpr std::size_t max_chunk_ext = 4 * 1024;
constexpr std::size_t max_trailer = 64 * 1024;

std::string view_to_string(boost::beast::string_view v) {
  return std::string(v.data(), v.size());
}

std::string version_text(unsigned version) {
  return std::to_string(version / 10) + "." + std::to_string(version % 10);
}

/// Connection and Proxy-Connection values together, for is_hop_by_hop().
std::string connection_tokens(const std::optional<std::string>& a, const std::optional<std::string>& b) {
  std::string out = a.value_or("");
  if (b) {
    if (!out.empty()) {
      out.append(",");
    }
    out.append(*b);
  }
  return out;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

/// The end-to-end fields: hop-by-hop ones dropped, Transfer-Encoding kept for a chunked body.
void append_end_to_end(std::string& out, const std::vector<header_field>& fields, std::string_view tokens, bool chunked,
                       bool drop_host, bool drop_content_length = false) {
  for (const auto& f : fields) {
    if (drop_host && detail::iequals(f.name, "Host")) {
      continue;
    }
    if (drop_content_length && detail::iequals(f.name, "Content-Length")) {
      continue;
    }
    if (chunked && detail::iequals(f.name, "Transfer-Encoding")) {
      append_field(out, f.name, f.value);
      continue;
    }
    if (is_hop_by_hop(f.name, tokens)) {
      continue;
    }
    append_field(out, f.name, f.value);
  }
}

http_error bad_gateway(std::string_view reason) {
  return http_error{502, reason, error_reply(502)};
}

}  // namespace

body_framing request_body_framing(const request_head& head) {
  if (head.chunked) {
    return {body_kind::chunked, 0};
  }
  if (head.content_length && *head.content_length > 0) {
    return {body_kind::content_length, *head.content_length};
  }
  return {body_kind::none, 0};
}

bool is_hop_by_hop(std::string_view name, std::string_view tokens) {
  static constexpr std::string_view fixed[] = {
      "Connection", "Keep-Alive",        "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "TE",
      "Trailer",    "Transfer-Encoding", "Upgrade"};
  for (const auto f : fixed) {
    if (detail::iequals(name, f)) {
      return true;
    }
  }
  return detail::list_contains(tokens, name);
}

std::vector<std::uint8_t> build_forward_request(const request_head& head, bool upstream_keep_alive) {
  const bool absolute = head.form == target_form::absolute;
  std::string out;
  out.reserve(256);
  out.append(head.method).append(" ").append(absolute ? head.path : head.target);
  out.append(" HTTP/").append(version_text(head.version)).append("\r\n");
  if (absolute) {
    std::string host = to_string(head.authority);
    if (head.authority.port == 80) {
      host.resize(host.size() - 3);  // drop ":80", the http default
    }
    append_field(out, "Host", host);
  }
  append_end_to_end(out, head.fields, connection_tokens(head.connection, head.proxy_connection), head.chunked,
                    absolute);
  out.append("Via: ").append(version_text(head.version)).append(" edgerelay\r\n");
  if (!upstream_keep_alive) {
    out.append("Connection: close\r\n");
  } else if (head.version == 10) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
  return detail::to_bytes(out);
}

std::optional<std::string_view> response_head::field(std::string_view name) const {
  for (const auto& f : fields) {
    if (detail::iequals(f.name, name)) {
      return std::string_view(f.value);
    }
  }
  return std::nullopt;
}

struct response_head_reader::impl {
  impl(std::string_view method, std::size_t limit) : header_limit(limit), head_request(method == "HEAD") {
    parser.header_limit(static_cast<std::uint32_t>(limit));
    parser.eager(false);  // header only: the body is streamed by the caller through body_tracker
    parser.body_limit(boost::none);
    parser.skip(head_request);  // a response to HEAD has no body whatever its fields say
  }
  std::size_t header_limit;
  bool head_request;
  http::response_parser<http::empty_body> parser;
  std::vector<std::uint8_t> buf;
  std::size_t used = 0;
  std::size_t scan = 0;
  bool finished = false;
  bool succeeded = false;
};

response_head_reader::response_head_reader(std::string_view request_method, std::size_t header_limit)
    : impl_(std::make_unique<impl>(request_method, header_limit)) {}
response_head_reader::~response_head_reader() = default;
response_head_reader::response_head_reader(response_head_reader&&) noexcept = default;
response_head_reader& response_head_reader::operator=(response_head_reader&&) noexcept = default;

response_result response_head_reader::feed(std::span<const std::uint8_t> in) {
  impl& s = *impl_;
  if (s.finished) {
    return bad_gateway("response reader already finished");
  }
  s.buf.insert(s.buf.end(), in.begin(), in.end());
  // Beast sees a head only once its CRLFCRLF has arrived. Fed partial heads it reports some syntax
  // errors early and others only later, so the outcome would depend on how TCP cut the bytes; and
  // its header_limit is counted per stage (start line, then fields), not for the whole head.
  const std::size_t head_end = detail::find_head_end(s.buf, s.scan);
  if (head_end == std::string_view::npos) {
    if (s.buf.size() >= s.header_limit) {
      s.finished = true;
      return bad_gateway("response header section too large");
    }
    return need_more{};
  }
  s.finished = true;
  if (head_end > s.header_limit) {
    return bad_gateway("response header section too large");
  }
  boost::beast::error_code ec;
  const std::size_t n = s.parser.put(boost::asio::const_buffer(s.buf.data(), head_end), ec);
  if (ec || n != head_end || !s.parser.is_header_done()) {
    return bad_gateway("malformed response head");
  }
  s.used = head_end;
  parsed<response_head> out;
  out.consumed = s.used;
  response_head& h = out.value;
  const auto& msg = s.parser.get();
  h.status = msg.result_int();
  h.reason = view_to_string(msg.reason());
  h.version = msg.version();
  for (const auto& f : msg) {
    header_field hf{view_to_string(f.name_string()), view_to_string(f.value())};
    auto join = [&](std::optional<std::string>& slot) {
      if (slot) {
        slot->append(", ").append(hf.value);
      } else {
        slot = hf.value;
      }
    };
    if (detail::iequals(hf.name, "Connection")) {
      join(h.connection);
    } else if (detail::iequals(hf.name, "Transfer-Encoding")) {
      join(h.transfer_encoding);
    }
    h.fields.push_back(std::move(hf));
  }
  if (h.connection && detail::names_framing_field(*h.connection)) {
    return bad_gateway("response Connection names Content-Length, Transfer-Encoding or Host");
  }
  if (const auto len = s.parser.content_length()) {
    h.content_length = *len;
  }
  // RFC 9112 section 6.3, in its order.
  if (s.head_request || (h.status >= 100 && h.status < 200) || h.status == 204 || h.status == 304) {
    h.framing = {body_kind::none, 0};
  } else if (h.transfer_encoding) {
    h.framing = s.parser.chunked() ? body_framing{body_kind::chunked, 0} : body_framing{body_kind::until_close, 0};
  } else if (h.content_length) {
    h.framing = *h.content_length == 0 ? body_framing{body_kind::none, 0}
                                       : body_framing{body_kind::content_length, *h.content_length};
  } else {
    h.framing = {body_kind::until_close, 0};
  }
  h.keep_alive = s.parser.keep_alive() && h.framing.kind != body_kind::until_close && h.status != 101;
  s.succeeded = true;
  return out;
}

std::span<const std::uint8_t> response_head_reader::leftover() const {
  if (!impl_->succeeded) {
    return {};
  }
  return std::span<const std::uint8_t>(impl_->buf).subspan(impl_->used);
}

std::vector<std::uint8_t> build_forward_response(const response_head& head, std::string_view connection) {
  std::string out;
  out.reserve(256);
  out.append("HTTP/").append(version_text(head.version)).append(" ").append(std::to_string(head.status));
  out.append(" ").append(head.reason).append("\r\n");
  // RFC 9112 section 6.3: with a Transfer-Encoding the Content-Length is not the framing, so the
  // client must not see one (it would read the body by it).
  append_end_to_end(out, head.fields, connection_tokens(head.connection, std::nullopt),
                    head.framing.kind == body_kind::chunked, false, head.transfer_encoding.has_value());
  out.append("Via: ").append(version_text(head.version)).append(" edgerelay\r\n");
  if (!connection.empty()) {
    append_field(out, "Connection", connection);
  }
  out.append("\r\n");
  return detail::to_bytes(out);
}

// ---------------------------------------------------------------------------------------------
// body_tracker

body_tracker::body_tracker(body_framing framing) : kind_(framing.kind), state_(state::counting) {
  switch (kind_) {
    case body_kind::none: state_ = state::done; break;
    case body_kind::content_length:
      left_ = framing.length;
      state_ = left_ == 0 ? state::done : state::counting;
      break;
    case body_kind::chunked: state_ = state::size; break;
    case body_kind::until_close: state_ = state::counting; break;
  }
}

bool body_tracker::eof_is_end() const {
  return state_ == state::done || kind_ == body_kind::until_close;
}

body_step body_tracker::feed(std::span<const std::uint8_t> in) {
  if (state_ == state::done) {
    return {body_state::done, 0, {}};
  }
  if (state_ == state::error) {
    return {body_state::error, 0, error_};
  }
  if (kind_ == body_kind::until_close) {
    through_ += in.size();
    return {body_state::more, in.size(), {}};
  }
  if (kind_ == body_kind::content_length) {
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size()));
    left_ -= take;
    through_ += take;
    if (left_ == 0) {
      state_ = state::done;
      return {body_state::done, take, {}};
    }
    return {body_state::more, take, {}};
  }

  auto fail = [this](std::string_view why) {
    state_ = state::error;
    error_ = why;
    return body_step{body_state::error, 0, why};
  };
  auto hex_value = [](std::uint8_t c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  };

  std::size_t i = 0;
  while (i < in.size()) {
    const std::uint8_t c = in[i];
    switch (state_) {
      case state::size: {
        const int v = hex_value(c);
        if (v >= 0) {
          if (digits_ == 16) {
            return fail("chunk size too large");
          }
          left_ = (left_ << 4) | static_cast<std::uint64_t>(v);
          ++digits_;
          ++i;
          break;
        }
        if (digits_ == 0) {
          return fail("chunk size without hex digits");
        }
        if (c == ' ' || c == '\t') {
          state_ = state::size_ws;
          ++i;
        } else if (c == ';') {
          state_ = state::ext;
          line_ = 0;
          ++i;
        } else if (c == '\r') {
          state_ = state::size_lf;
          ++i;
        } else {
          return fail("bad byte in chunk size line");
        }
        break;
      }
      case state::size_ws:
        if (c == ' ' || c == '\t') {
          ++i;
        } else if (c == ';') {
          state_ = state::ext;
          line_ = 0;
          ++i;
        } else {
          return fail("whitespace after chunk size not followed by an extension");
        }
        break;
      case state::ext:
        if (c == '\r') {
          state_ = state::size_lf;
        } else if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7F) {
          return fail("control byte in chunk extension");
        } else if (++line_ > max_chunk_ext) {
          return fail("chunk extension too long");
        }
        ++i;
        break;
      case state::size_lf:
        if (c != '\n') {
          return fail("chunk size line not ended by CRLF");
        }
        ++i;
        digits_ = 0;
        state_ = left_ == 0 ? state::trailer_start : state::data;
        break;
      case state::data: {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size() - i));
        left_ -= take;
        i += take;
        if (left_ == 0) {
          state_ = state::data_cr;
        }
        break;
      }
      case state::data_cr:
        if (c != '\r') {
          return fail("chunk data not followed by CRLF");
        }
        state_ = state::data_lf;
        ++i;
        break;
      case state::data_lf:
        if (c != '\n') {
          return fail("chunk data not followed by CRLF");
        }
        state_ = state::size;
        ++i;
        break;
      case state::trailer_start:
        if (c == '\r') {
          state_ = state::final_lf;
          ++i;
          break;
        }
        state_ = state::trailer_line;
        [[fallthrough]];
      case state::trailer_line:
        if (c == '\r') {
          state_ = state::trailer_lf;
        } else if (c == '\n') {
          return fail("bare LF in trailer section");
        }
        if (++trailer_ > max_trailer) {
          return fail("trailer section too long");
        }
        ++i;
        break;
      case state::trailer_lf:
        if (c != '\n') {
          return fail("trailer line not ended by CRLF");
        }
        state_ = state::trailer_start;
        ++i;
        break;
      case state::final_lf:
        if (c != '\n') {
          return fail("chunked body not ended by CRLF");
        }
        ++i;
        state_ = state::done;
        through_ += i;
        return {body_state::done, i, {}};
      case state::counting:
      case state::done:
      case state::error: return fail("body tracker in an impossible state");
    }
  }
  through_ += i;
  return {body_state::more, i, {}};
}

}  // namespace edgerelay::tunnel
