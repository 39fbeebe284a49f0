#include "proxy/outbound/gateway/route.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <mutex>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>

#include "proxy/core/endpoint.hpp"
#include "proxy/observe/text_escape.hpp"
#include "tunnel/basic_auth.hpp"
#include "tunnel/connect_client_codec.hpp"
#include "tunnel/tls/half_close.hpp"
#include "tunnel/tls/tls_context.hpp"

namespace edgerelay::proxy::gateway {
namespace {

/// The SSL ex_data slot that holds the first certificate that failed verification, as text.
int failed_cert_index() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(ptr);  // NOLINT: OpenSSL owns the slot, we own the text
      });
  return index;
}

std::string name_text(const X509_NAME* name) {
  if (name == nullptr) return "(none)";
  std::array<char, 512> buf{};
  X509_NAME_oneline(name, buf.data(), static_cast<int>(buf.size()));
  std::string out;
  append_log_escaped(out, buf.data());
  return out;
}

/// Keeps OpenSSL's verdict; remembers which certificate failed first and who issued it.
int remember_failure(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok != 0) return preverify_ok;
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (ssl == nullptr || cert == nullptr || SSL_get_ex_data(ssl, failed_cert_index()) != nullptr) return preverify_ok;
  auto text = std::make_unique<std::string>("subject " + name_text(X509_get_subject_name(cert)) + ", issued by " +
                                            name_text(X509_get_issuer_name(cert)));
  if (SSL_set_ex_data(ssl, failed_cert_index(), text.get()) == 1) text.release();
  return preverify_ok;
}

void set_socket_options(tcp::socket& s) {
  error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
  s.set_option(net::socket_base::keep_alive(true), ignored);
}

/// Resolves `host` and connects to the first address that answers, under `dl`.
net::awaitable<std::pair<error_code, std::optional<tcp::socket>>> open_tcp(const std::string& host, std::uint16_t port,
                                                                           phase_deadline& dl) {
  const auto ex = co_await net::this_coro::executor;
  tcp::resolver resolver(ex);
  dl.watch(&resolver);
  auto [rec, results] =
      co_await resolver.async_resolve(host, std::to_string(port), tcp::resolver::numeric_service, use_ec);
  dl.watch(nullptr);
  if (rec) co_return std::pair{dl.expired() ? net::error::timed_out : rec, std::optional<tcp::socket>{}};
  error_code last = net::error::host_not_found;
  for (const auto& r : results) {
    tcp::socket s(ex);
    auto [ec] = co_await s.async_connect(r.endpoint(), dl.token());
    if (!ec) {
      set_socket_options(s);
      co_return std::pair{error_code{}, std::optional<tcp::socket>(std::move(s))};
    }
    last = dl.expired() ? net::error::timed_out : ec;
    if (dl.expired()) break;
  }
  co_return std::pair{last, std::optional<tcp::socket>{}};
}

std::string escaped(std::string_view s) {
  std::string out;
  append_log_escaped(out, s.substr(0, 200));
  return out;
}

std::vector<std::uint8_t> connect_head(std::string_view authority, std::string_view proxy_authorization) {
  std::string head = "CONNECT ";
  head.append(authority).append(" HTTP/1.1\r\nHost: ").append(authority).append("\r\n");
  if (!proxy_authorization.empty()) head.append("Proxy-Authorization: ").append(proxy_authorization).append("\r\n");
  head.append("\r\n");
  return {head.begin(), head.end()};
}

}  // namespace

basic_authenticator::basic_authenticator(std::string_view user, std::string_view password)
    : header_(tunnel::encode_basic_auth(user, password)) {}

std::string_view to_string(route_kind k) noexcept {
  switch (k) {
    case route_kind::direct: return "direct";
    case route_kind::connect: return "connect";
    case route_kind::absolute: return "absolute";
  }
  return "direct";
}

std::string authority_of(std::string_view host, std::uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out.append("[").append(host).append("]");
  } else {
    out.append(host);
  }
  return out.append(":").append(std::to_string(port));
}

tcp_route::tcp_route(route_settings s) : s_(std::move(s)) {
  if (s_.kind == route_kind::absolute) s_.tls.reset();
}

std::string tcp_route::describe() const {
  const std::string gw = authority_of(s_.gateway_host, s_.gateway_port);
  std::string out = s_.kind == route_kind::direct ? "direct to " + gw
                    : s_.kind == route_kind::connect
                        ? "CONNECT via proxy " + authority_of(s_.proxy_host, s_.proxy_port) + " to " + gw
                        : "plain-HTTP proxy " + authority_of(s_.proxy_host, s_.proxy_port) + " forwarding to " + gw;
  if (s_.auth) out.append(" (proxy auth ").append(s_.auth->scheme()).append(")");
  out.append(s_.tls ? ", TLS for " + s_.server_name : ", plain");
  return out;
}

net::awaitable<route_connection> tcp_route::connect(phase_deadline& dl) const {
  route_connection out;
  out.style.authority = authority_of(s_.gateway_host, s_.gateway_port);
  const bool via_proxy = s_.kind != route_kind::direct;
  auto [ec, socket] =
      co_await open_tcp(via_proxy ? s_.proxy_host : s_.gateway_host, via_proxy ? s_.proxy_port : s_.gateway_port, dl);
  if (!socket) {
    out.result = ec == net::error::timed_out ? outcome::connect_timeout : outcome_of_connect_error(ec);
    out.failed_hop = via_proxy ? "proxy" : "gateway";
    out.detail =
        (via_proxy ? "proxy " + authority_of(s_.proxy_host, s_.proxy_port) : "gateway " + out.style.authority) +
        " unreachable: " + ec.message();
    co_return out;
  }
  tunnel::client_stream stream(std::move(*socket));
  if (s_.kind == route_kind::absolute) {
    out.style.absolute_form = true;
    if (s_.auth) out.style.proxy_authorization = s_.auth->first();
  } else if (s_.kind == route_kind::connect) {
    co_await proxy_connect(stream, out, dl);
    if (!out.failed_hop.empty()) co_return out;
  }
  if (s_.tls) {
    co_await secure(stream, out, dl);
    if (!out.failed_hop.empty()) co_return out;
  }
  out.result = outcome::success;
  out.stream.emplace(std::move(stream));
  co_return out;
}

net::awaitable<void> tcp_route::proxy_connect(tunnel::client_stream& stream, route_connection& out,
                                              phase_deadline& dl) const {
  std::string authorization = s_.auth ? s_.auth->first() : std::string();
  for (unsigned round = 0;; ++round) {
    const auto head = connect_head(out.style.authority, authorization);
    auto [wec, written] = co_await net::async_write(stream, net::buffer(head), dl.token());
    tunnel::connect_response_reader reader;
    tunnel::connect_result step = tunnel::connect_step::need_more{};
    error_code ec = wec;
    while (!ec && std::holds_alternative<tunnel::connect_step::need_more>(step)) {
      std::array<std::uint8_t, 4> buf{};
      const std::size_t want = std::min(reader.wanted(), buf.size());
      auto [rec, n] = co_await net::async_read(stream, net::buffer(buf.data(), want), dl.token());
      ec = rec;
      if (!ec) step = reader.feed({buf.data(), n});
    }
    if (ec) {
      out.result = dl.expired() ? outcome::connect_timeout : outcome::general_failure;
      out.failed_hop = "proxy";
      out.detail =
          "proxy " + authority_of(s_.proxy_host, s_.proxy_port) +
          (dl.expired() ? " did not answer the CONNECT in time" : " closed during the CONNECT: " + ec.message());
      co_return;
    }
    if (std::holds_alternative<tunnel::connect_step::established>(step)) co_return;
    if (auto* bad = std::get_if<tunnel::connect_step::malformed>(&step)) {
      out.failed_hop = "proxy";
      out.detail = "proxy " + authority_of(s_.proxy_host, s_.proxy_port) +
                   " answered the CONNECT with no HTTP response: " + std::string(bad->what);
      co_return;
    }
    const auto& response = std::get<tunnel::connect_step::refused>(step).response;
    if (response.status == 407) {
      const std::string challenge = response.proxy_authenticate.value_or("");
      std::optional<std::string> next = s_.auth ? s_.auth->answer(challenge, round + 1) : std::nullopt;
      if (next && response.status == 407) {
        // Only a connection-oriented scheme answers here, on this same connection.
        authorization = std::move(*next);
        continue;
      }
      out.failed_hop = "proxy_auth";
      out.detail = "proxy " + authority_of(s_.proxy_host, s_.proxy_port) +
                   " answered 407 Proxy Authentication Required" +
                   (challenge.empty() ? "" : " (Proxy-Authenticate: " + escaped(challenge) + ")") +
                   (s_.auth ? ": it refused the " + std::string(s_.auth->scheme()) + " credentials of proxy.user"
                            : ": set proxy.user and proxy.password_file");
      co_return;
    }
    // 502/503/504: the proxy could not reach the gateway (worth another try); others are its policy.
    out.result = response.status == 504                             ? outcome::connect_timeout
                 : response.status == 502 || response.status == 503 ? outcome::host_unreachable
                                                                    : outcome::general_failure;
    out.failed_hop = "connect";
    out.detail = "proxy " + authority_of(s_.proxy_host, s_.proxy_port) + " refused CONNECT " + out.style.authority +
                 ": " + std::to_string(response.status) + " " + escaped(response.reason) +
                 (response.status == 403 ? " (the proxy may allow CONNECT to port 443 only)" : "");
    co_return;
  }
}

net::awaitable<void> tcp_route::secure(tunnel::client_stream& stream, route_connection& out, phase_deadline& dl) const {
  const error_code ec = co_await stream.connect_tls(*s_.tls, s_.server_name, dl.slot());
  if (!ec) {
    // A proxy's CONNECT tunnel would end both directions at our FIN: close_notify alone half-closes.
    if (s_.kind == route_kind::connect) tunnel::half_close_without_fin(stream);
    co_return;
  }
  out.result = dl.expired() ? outcome::connect_timeout : outcome::backend_tls_failed;
  const bool verify = stream.ssl() != nullptr && SSL_get_verify_result(stream.ssl()) != X509_V_OK;
  out.failed_hop = verify ? "tls_verify" : "tls";
  out.detail = dl.expired() ? "TLS handshake with the gateway timed out"
                            : describe_tls_failure(stream.ssl(), ec, s_.server_name);
  stream.close();
}

std::string describe_tls_failure(SSL* ssl, const error_code& ec, std::string_view server_name) {
  std::string out = "TLS with the gateway failed: " + tunnel::tls_failure_reason(ssl, ec);
  if (ssl == nullptr || SSL_get_verify_result(ssl) == X509_V_OK) return out;
  if (const auto* failed = static_cast<const std::string*>(SSL_get_ex_data(ssl, failed_cert_index()))) {
    out.append("; the certificate presented for ").append(server_name).append(" has ").append(*failed);
  }
  out.append("; a TLS-inspecting proxy may be in the way (its CA is not gateway.tls.ca)");
  return out;
}

std::shared_ptr<net::ssl::context> make_gateway_tls_context(const config::gateway_tls_config& t, std::string& error) {
  auto built = tunnel::make_client_context(config::backend_tls{t.ca, t.server_name});
  if (!built.context) {
    error = built.error;
    return nullptr;
  }
  SSL_CTX* ctx = built.context->native_handle();
  ERR_clear_error();
  if (!t.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, t.cert.c_str()) != 1) {
      error = t.cert + ": cannot load the client certificate";
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, t.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      error = t.key + ": cannot load the client key";
      return nullptr;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      error = t.key + ": key does not match certificate " + t.cert;
      return nullptr;
    }
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, remember_failure);
  (void)failed_cert_index();  // allocated on the control thread, before any handshake
  ERR_clear_error();
  return built.context;
}

}  // namespace edgerelay::proxy::gateway
