// The polling requests' checks and the door's responses.
#include "tunnel/polling_codec.hpp"

#include <algorithm>

#include "tunnel/http_text.hpp"

namespace edgerelay::tunnel {
namespace {

using detail::iequals;

poll_refusal refuse(unsigned status, std::string reason) {
  return poll_refusal{status, std::move(reason)};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// A sequence number: 1 to 20 decimal digits that fit in 64 bits.
std::optional<std::uint64_t> parse_seq(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

/// The path after `door_path` + "/poll/", or nullopt when the path is not under it.
std::optional<std::string_view> poll_rest(std::string_view path, std::string_view door_path) {
  path = path.substr(0, path.find('?'));
  if (!path.starts_with(door_path)) return std::nullopt;
  path.remove_prefix(door_path.size());
  constexpr std::string_view poll = "/poll/";
  if (!path.starts_with(poll)) return std::nullopt;
  path.remove_prefix(poll.size());
  return path;
}

struct query_values {
  std::optional<std::string_view> target;
  std::optional<std::string_view> seq;
  bool repeated = false;
};

query_values read_query(std::string_view path) {
  query_values q;
  const std::size_t question = path.find('?');
  std::string_view query = question == std::string_view::npos ? std::string_view() : path.substr(question + 1);
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = param.find('=');
    const std::string_view name = param.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    // Other parameters (a client's cache buster) are ignored.
    std::optional<std::string_view>* slot = name == "target" ? &q.target : name == "seq" ? &q.seq : nullptr;
    if (slot == nullptr) continue;
    if (slot->has_value()) q.repeated = true;
    *slot = value;
  }
  return q;
}

/// Every field named `name`; count says how many there were.
std::optional<std::string_view> only_field(const request_head& head, std::string_view name, std::size_t& count) {
  count = 0;
  std::optional<std::string_view> value;
  for (const auto& f : head.fields) {
    if (!iequals(f.name, name)) continue;
    ++count;
    value = f.value;
  }
  return value;
}

std::string_view phrase(unsigned status) {
  switch (status) {
    case 204: return "No Content";
    case 401: return "Unauthorized";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    default: return reason_phrase(status);
  }
}

}  // namespace

bool is_poll_id(std::string_view id) noexcept {
  return id.size() == poll_id_bytes * 2 &&
         std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string poll_id_text(std::span<const std::uint8_t, poll_id_bytes> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(poll_id_bytes * 2);
  for (std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0x0f];
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    out += c;
  }
  return out;
}

bool is_poll_path(const request_head& head, std::string_view door_path) {
  return poll_rest(head.path, door_path).has_value();
}

std::variant<poll_request, poll_refusal> parse_poll_request(const request_head& head, std::string_view door_path) {
  const std::optional<std::string_view> rest = poll_rest(head.path, door_path);
  if (!rest) {
    return refuse(404, "not a polling path");
  }
  if (head.form != target_form::origin && head.form != target_form::absolute) {
    return refuse(400, "bad request-target");
  }
  poll_request r;
  std::string_view action;
  if (*rest == "open") {
    r.op = poll_op::open;
  } else {
    const std::size_t slash = rest->find('/');
    if (slash == std::string_view::npos) {
      return refuse(404, "no such polling request");
    }
    const std::string_view id = rest->substr(0, slash);
    action = rest->substr(slash + 1);
    if (!is_poll_id(id)) {
      return refuse(404, "no such session");
    }
    if (action == "up") {
      r.op = poll_op::up;
    } else if (action == "down") {
      r.op = poll_op::down;
    } else if (action == "close") {
      r.op = poll_op::close;
    } else {
      return refuse(404, "no such polling request");
    }
    r.id = std::string(id);
  }
  const std::string_view method = r.op == poll_op::down ? "GET" : "POST";
  if (head.method != method) {
    return refuse(405, r.op == poll_op::down ? "down is a GET" : "open, up and close are POSTs");
  }
  const query_values q = read_query(head.path);
  if (q.repeated) {
    return refuse(400, "a query parameter given twice");
  }
  if (r.op == poll_op::open) {
    if (!q.target) return refuse(400, "missing target");
    std::optional<std::string> target = percent_decode(*q.target);
    if (!target || target->empty()) return refuse(400, "bad target");
    r.target = std::move(*target);
  } else if (r.op == poll_op::up || r.op == poll_op::down) {
    if (!q.seq) return refuse(400, "missing seq");
    const std::optional<std::uint64_t> seq = parse_seq(*q.seq);
    if (!seq) return refuse(400, "bad seq (expected a decimal number)");
    r.seq = *seq;
  }
  std::size_t controls = 0;
  const std::optional<std::string_view> control = only_field(head, "Edgerelay-Control", controls);
  if (controls > 1) {
    return refuse(400, "Edgerelay-Control given twice");
  }
  if (control) {
    if (r.op != poll_op::up) return refuse(400, "Edgerelay-Control goes on up requests only");
    const std::string_view v = detail::trim_ows(*control);
    if (iequals(v, "fin")) {
      r.control = poll_control::fin;
    } else if (iequals(v, "break")) {
      r.control = poll_control::brk;
    } else {
      return refuse(400, "unknown Edgerelay-Control (expected fin or break)");
    }
  }
  std::size_t authorizations = 0;
  const std::optional<std::string_view> authorization = only_field(head, "Authorization", authorizations);
  if (authorizations > 1) {
    return refuse(400, "more than one Authorization");
  }
  if (authorization) {
    r.authorization = std::string(*authorization);
  }
  if (head.chunked || head.transfer_encoding) {
    return refuse(r.op == poll_op::up ? 411 : 400, "polling bodies need a Content-Length, not chunked");
  }
  if (r.op == poll_op::up) {
    if (!head.content_length) return refuse(411, "up needs a Content-Length");
    if (*head.content_length > poll_max_body) return refuse(413, "up bodies are at most 65536 bytes");
    r.body_size = *head.content_length;
  } else if (head.content_length.value_or(0) != 0) {
    return refuse(400, "this polling request takes no body");
  }
  return r;
}

std::string poll_response(unsigned status, std::span<const poll_header> extra, std::string_view body, bool keep_alive,
                          std::string_view content_type) {
  std::string out;
  out.reserve(256 + body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += phrase(status);
  out += "\r\nCache-Control: no-store\r\nContent-Length: ";
  out += std::to_string(body.size());
  if (!body.empty()) {
    out += "\r\nContent-Type: ";
    out += content_type;
  }
  out += keep_alive ? "\r\nConnection: keep-alive" : "\r\nConnection: close";
  for (const auto& [name, value] : extra) {
    out += "\r\n";
    out += name;
    out += ": ";
    out += value;
  }
  out += "\r\n\r\n";
  out += body;
  return out;
}

std::string poll_error_response(unsigned status, std::string_view reason, std::string_view result) {
  std::string body(reason);
  body += '\n';
  if (result.empty()) {
    return poll_response(status, {}, body, false, "text/plain");
  }
  const poll_header h[] = {{"Edgerelay-Result", result}};
  return poll_response(status, h, body, false, "text/plain");
}

}  // namespace edgerelay::tunnel
