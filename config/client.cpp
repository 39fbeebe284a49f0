#include "config/client.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "config/address.hpp"

namespace edgerelay::config {
namespace {

char lower_ascii(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// A no_proxy entry without its port: "host:port", "[v6]:port" and bare IPv6 all occur.
std::string_view entry_host(std::string_view e) noexcept {
  if (e.starts_with('[')) {
    const auto close = e.find(']');
    return close == std::string_view::npos ? e : e.substr(1, close - 1);
  }
  const auto colon = e.find(':');
  if (colon != std::string_view::npos && e.find(':', colon + 1) == std::string_view::npos) {
    return e.substr(0, colon);
  }
  return e;
}

}  // namespace

std::string_view to_string(gateway_transport t) noexcept {
  switch (t) {
    case gateway_transport::automatic: return "auto";
    case gateway_transport::websocket: return "websocket";
    case gateway_transport::polling: return "polling";
    case gateway_transport::socks5: return "socks5";
  }
  return "auto";
}

std::optional<proxy_config> parse_proxy_url(std::string_view url, std::string* why) {
  auto fail = [&](std::string text) -> std::optional<proxy_config> {
    if (why != nullptr) *why = std::move(text);
    return std::nullopt;
  };
  std::string_view rest = url;
  const auto scheme_end = rest.find("://");
  if (scheme_end == std::string_view::npos) {
    return fail("expected http://host:port");
  }
  const std::string_view scheme = rest.substr(0, scheme_end);
  if (!iequals(scheme, "http")) {
    return fail(
        "scheme '" + std::string(scheme) +
        "' is not supported (expected http://host:port; the gateway's own TLS runs inside the proxy's CONNECT)");
  }
  rest.remove_prefix(scheme_end + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('@') != std::string_view::npos) {
    return fail("credentials in the url are refused (use user and password_file)");
  }
  if (rest.find('/') != std::string_view::npos || rest.find('?') != std::string_view::npos) {
    return fail("a proxy url has no path (expected http://host:port)");
  }
  std::string inner;
  auto hp = parse_host_port(rest, &inner);
  if (!hp) {
    return fail(inner.empty() ? "expected http://host:port" : inner + " (expected http://host:port)");
  }
  proxy_config p;
  p.url = std::string(url);
  p.host = hp->host;
  p.port = hp->port;
  return p;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host) noexcept {
  std::size_t pos = 0;
  while (pos <= no_proxy.size()) {
    const auto comma = no_proxy.find(',', pos);
    const std::string_view raw =
        no_proxy.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? no_proxy.size() + 1 : comma + 1;
    std::string_view e = entry_host(trim(raw));
    if (e.empty()) continue;
    if (e == "*") return true;
    if (e.starts_with("*.")) e.remove_prefix(1);
    if (e.starts_with('.')) {
      e.remove_prefix(1);
      if (host_is_subdomain_of(host, e)) return true;
      continue;
    }
    if (host_equals(host, e) || host_is_subdomain_of(host, e)) return true;
  }
  return false;
}

effective_proxy proxy_for(const client_config& cfg,
                          const std::function<std::optional<std::string>(std::string_view)>& env) {
  effective_proxy out;
  if (cfg.proxy) {
    out.proxy = cfg.proxy;
    out.source = "config";
    return out;
  }
  auto first_set = [&](std::initializer_list<std::string_view> names) -> std::pair<std::string, std::string> {
    for (auto n : names) {
      if (auto v = env(n); v && !trim(*v).empty()) return {std::string(n), std::string(trim(*v))};
    }
    return {};
  };
  const auto [no_proxy_name, no_proxy] = first_set({"no_proxy", "NO_PROXY"});
  if (!no_proxy.empty() && no_proxy_matches(no_proxy, cfg.gateway.host)) {
    return out;
  }
  const auto [name, value] = cfg.gateway.tls ? first_set({"https_proxy", "HTTPS_PROXY"})
                                             : first_set({"http_proxy"});  // HTTP_PROXY: httpoxy (CGI)
  if (value.empty()) {
    return out;
  }
  std::string why;
  auto p = parse_proxy_url(value, &why);
  if (!p) {
    out.error = "the environment variable " + name + " is not a usable proxy: " + why;
    return out;
  }
  out.proxy = std::move(p);
  out.source = name;
  return out;
}

std::optional<std::string> read_secret_file(const std::string& path, std::string* why) {
  auto fail = [&](std::string text) -> std::optional<std::string> {
    if (why != nullptr) *why = path + ": " + std::move(text);
    return std::nullopt;
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(std::string("cannot read the password file: ") + std::strerror(errno));
  }
  std::string text;
  char buffer[4097];
  in.read(buffer, sizeof buffer);
  text.assign(buffer, static_cast<std::size_t>(in.gcount()));
  if (text.size() > 4096) {
    return fail("the password file is over 4 KiB (expected one line)");
  }
  const auto end = text.find_first_of("\r\n");
  if (end != std::string::npos) text.resize(end);
  if (text.empty()) {
    return fail("the password file is empty (expected the password on its first line)");
  }
  return text;
}

}  // namespace edgerelay::config
