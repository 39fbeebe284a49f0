// Access-log formatting: fields of docs/config.md, JSON-escaped, one write per line.
#include "proxy/observe/access_log.hpp"

#include <unistd.h>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c >= 0x7f) {
      out.append("\\u00");
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    } else {
      out.push_back(ch);
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
  if (!r.detail.empty()) {
    field(out, "detail", r.detail);
  }
  if (!r.tls_error.empty()) {
    field(out, "tls_error", r.tls_error);
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
    const std::string line = format_access_line(r);
    std::string_view rest = line;
    while (!rest.empty()) {
      const ssize_t n = ::write(STDOUT_FILENO, rest.data(), rest.size());
      if (n <= 0) {
        return;
      }
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  } catch (...) {}
}

}  // namespace edgerelay::proxy
