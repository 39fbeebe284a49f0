// Strict base64 and the Basic credentials split; no logging here because the input is a secret.
#include "tunnel/basic_auth.hpp"

#include <array>
#include <optional>

#include "tunnel/http_text.hpp"

namespace edgerelay::tunnel {

namespace {

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) {
    v = -1;
  }
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}

constexpr auto decode_table = make_decode_table();

/// Canonical base64 only (RFC 4648 section 3.5 rejects non-zero pad bits): otherwise two spellings
/// of one secret would exist, which hides tampering and confuses caches keyed on the header.
std::optional<std::string> decode_base64(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) {
    return std::nullopt;
  }
  std::size_t pad = 0;
  if (in.back() == '=') {
    pad = (in[in.size() - 2] == '=') ? 2 : 1;
  }
  std::string out;
  out.reserve(in.size() / 4 * 3);
  const std::size_t groups = in.size() / 4;
  for (std::size_t g = 0; g < groups; ++g) {
    const bool last = g + 1 == groups;
    const std::size_t data_chars = (last ? 4 - pad : 4);
    std::uint32_t acc = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      const char c = in[g * 4 + i];
      if (i >= data_chars) {
        if (c != '=') {
          return std::nullopt;
        }
        acc <<= 6;
        continue;
      }
      const std::int8_t v = decode_table[static_cast<unsigned char>(c)];
      if (v < 0) {
        return std::nullopt;  // includes '=' in the middle
      }
      acc = (acc << 6) | static_cast<std::uint32_t>(v);
    }
    out.push_back(static_cast<char>((acc >> 16) & 0xFF));
    if (data_chars >= 3) {
      out.push_back(static_cast<char>((acc >> 8) & 0xFF));
    } else if ((acc & 0xFFFF) != 0) {
      return std::nullopt;
    }
    if (data_chars == 4) {
      out.push_back(static_cast<char>(acc & 0xFF));
    } else if (data_chars == 3 && (acc & 0xFF) != 0) {
      return std::nullopt;
    }
  }
  return out;
}

bool has_control(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string_view to_string(basic_auth_error e) {
  switch (e) {
    case basic_auth_error::not_basic: return "not Basic credentials";
    case basic_auth_error::bad_base64: return "bad base64 in Basic credentials";
    case basic_auth_error::no_colon: return "no ':' in Basic credentials";
    case basic_auth_error::empty_user: return "empty user in Basic credentials";
    case basic_auth_error::bad_character: return "control character in Basic credentials";
    case basic_auth_error::too_long: return "Basic credentials too long";
  }
  return "bad Basic credentials";
}

basic_auth_result parse_basic_auth(std::string_view value) {
  value = detail::trim_ows(value);
  constexpr std::string_view scheme = "Basic";
  if (value.size() <= scheme.size() || !detail::iequals(value.substr(0, scheme.size()), scheme) ||
      value[scheme.size()] != ' ') {
    return basic_auth_error::not_basic;
  }
  value.remove_prefix(scheme.size());
  while (!value.empty() && value.front() == ' ') {
    value.remove_prefix(1);
  }
  if (value.empty()) {
    return basic_auth_error::not_basic;
  }
  // user + ':' + password, base64-expanded by 4/3 and rounded up to a whole group.
  constexpr std::size_t max_encoded = (max_basic_user + 1 + max_basic_password + 2) / 3 * 4;
  if (value.size() > max_encoded) {
    return basic_auth_error::too_long;
  }
  auto decoded = decode_base64(value);
  if (!decoded) {
    return basic_auth_error::bad_base64;
  }
  const std::string_view text = *decoded;
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return basic_auth_error::no_colon;
  }
  const std::string_view user = text.substr(0, colon);
  const std::string_view password = text.substr(colon + 1);
  if (user.empty()) {
    return basic_auth_error::empty_user;
  }
  if (user.size() > max_basic_user || password.size() > max_basic_password) {
    return basic_auth_error::too_long;
  }
  if (has_control(user) || has_control(password)) {
    return basic_auth_error::bad_character;
  }
  return credentials{std::string(user), std::string(password)};
}

std::string encode_basic_auth(std::string_view user, std::string_view password) {
  std::string plain;
  plain.reserve(user.size() + 1 + password.size());
  plain.append(user).append(":").append(password);
  std::string out = "Basic ";
  out.reserve(out.size() + (plain.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= plain.size(); i += 3) {
    const std::uint32_t v = (static_cast<std::uint32_t>(static_cast<unsigned char>(plain[i])) << 16) |
                            (static_cast<std::uint32_t>(static_cast<unsigned char>(plain[i + 1])) << 8) |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(plain[i + 2]));
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const std::size_t rest = plain.size() - i;
  if (rest > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(plain[i])) << 16;
    if (rest == 2) {
      v |= static_cast<std::uint32_t>(static_cast<unsigned char>(plain[i + 1])) << 8;
    }
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace edgerelay::tunnel
