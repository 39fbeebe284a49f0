// UTF-8 validation and the operator log's escaping.
#include "proxy/observe/text_escape.hpp"

namespace edgerelay::proxy {
namespace {
constexpr char hex_digits[] = "0123456789abcdef";

bool continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

void append_hex_byte(std::string& out, unsigned char c) {
  out.append("\\x");
  out.push_back(hex_digits[c >> 4]);
  out.push_back(hex_digits[c & 0xF]);
}
}  // namespace

std::size_t utf8_sequence_length(std::string_view s) noexcept {
  if (s.empty()) return 0;
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  if (lead < 0x80) return 1;
  // The second byte's range depends on the lead: that is what excludes overlong forms (E0, F0),
  // surrogates (ED) and code points above U+10FFFF (F4).
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  std::size_t length = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;  // a continuation byte, C0/C1 (always overlong) or F5-FF (never used)
  }
  if (s.size() < length || b(1) < low || b(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (!continuation(b(i))) return 0;
  }
  return length;
}

bool is_c1_control(std::string_view sequence) noexcept {
  return sequence.size() == 2 && static_cast<unsigned char>(sequence[0]) == 0xC2 &&
         static_cast<unsigned char>(sequence[1]) < 0xA0;
}

void append_log_escaped(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out.append("\\\\");
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      append_hex_byte(out, c);
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (const std::size_t n = utf8_sequence_length(s.substr(i)); n == 0) {
      append_hex_byte(out, c);
      ++i;
    } else if (is_c1_control(s.substr(i, n))) {
      for (std::size_t k = 0; k < n; ++k) append_hex_byte(out, static_cast<unsigned char>(s[i + k]));
      i += n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
}

}  // namespace edgerelay::proxy
