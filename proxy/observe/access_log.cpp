// Access-log formatting: fields of docs/config.md, JSON-escaped, handed whole to the log writer.
#include "proxy/observe/access_log.hpp"

#include "proxy/observe/log.hpp"
#include "proxy/observe/log_sink.hpp"
#include "proxy/observe/text_escape.hpp"

namespace edgerelay::proxy {

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto append_u00 = [&](unsigned char c) {
    out.append("\\u00");
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 0xF]);
  };
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      append_u00(c);
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (const std::size_t n = utf8_sequence_length(s.substr(i)); n == 0) {
      // JSON strings hold text, not bytes: a byte outside UTF-8 is written as the code point of
      // the same number, so the line stays valid JSON and the byte stays visible.
      append_u00(c);
      ++i;
    } else if (is_c1_control(s.substr(i, n))) {
      append_u00(static_cast<unsigned char>(s[i + 1]));
      i += n;
    } else {
      // Well-formed UTF-8 (a user or a certificate name in another script) is kept as it is, so a
      // JSON reader gets the name back rather than its bytes read as Latin-1.
      out.append(s.substr(i, n));
      i += n;
    }
  }
}

namespace {
void field(std::string& out, std::string_view key, std::string_view value) {
  out.push_back('"');
  out.append(key);
  out.append("\":\"");
  append_json_escaped(out, value);
  out.append("\",");
}
void field(std::string& out, std::string_view key, std::uint64_t value) {
  out.push_back('"');
  out.append(key);
  out.append("\":");
  append(out, value);
  out.push_back(',');
}
}  // namespace

std::string format_access_line(const access_record& r) {
  std::string out;
  out.reserve(320);
  out.push_back('{');
  field(out, "ts", log::timestamp());
  field(out, "listener", r.listener);
  field(out, "client", r.client);
  field(out, "user", r.user);
  if (!r.claimed_user.empty()) {
    field(out, "claimed_user", r.claimed_user);
  }
  field(out, "protocol", r.protocol);
  if (!r.command.empty()) {
    field(out, "command", r.command);
  }
  if (!r.tls_version.empty()) {
    field(out, "tls", r.tls_version);
  }
  if (!r.sni.empty()) {
    field(out, "sni", r.sni);
  }
  field(out, "target", r.target);
  field(out, "dialled", r.dialled);
  field(out, "rule", r.rule);
  field(out, "result", to_string(r.result));
  if (!r.via.empty()) {
    field(out, "via", r.via);
  }
  if (!r.via_hop.empty()) {
    field(out, "detail", concat("hop ", r.via_hop, ": ", r.detail));
  } else if (!r.detail.empty()) {
    field(out, "detail", r.detail);
  }
  if (!r.tls_error.empty()) {
    field(out, "tls_error", r.tls_error);
  }
  if (!r.proxied_by.empty()) {
    field(out, "proxied_by", r.proxied_by);
    if (!r.proxy_authority.empty()) field(out, "proxy_authority", r.proxy_authority);
    if (!r.proxy_tls.empty()) field(out, "proxy_tls", r.proxy_tls);
    if (!r.proxy_tls_cn.empty()) field(out, "proxy_tls_cn", r.proxy_tls_cn);
  }
  field(out, "bytes_up", r.bytes_up);
  field(out, "bytes_down", r.bytes_down);
  const auto elapsed = std::chrono::steady_clock::now() - r.started;
  field(out, "duration_ms",
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));
  out.back() = '}';
  out.push_back('\n');
  return out;
}

void write_access_line(const access_record& r) noexcept {
  try {
    log::emit(log::stream::access_log, format_access_line(r));
  } catch (...) {
    // Out of memory while formatting: drop the line rather than the session.
  }
}

}  // namespace edgerelay::proxy
