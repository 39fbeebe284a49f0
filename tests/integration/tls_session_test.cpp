// TLS termination in sessions (docs/config.md, tls): mTLS and the certificate identity in rules, SNI,
// 64 MiB each way through SOCKS5 and HTTP CONNECT over TLS, plaintext on required and optional
// listeners, versions and ALPN, certificate reload, backends dialled over TLS, the handshake
// deadline and forward doors with TLS. Real sockets on loopback; every wait is bounded.
#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "tests/integration/harness.hpp"
#include "tests/sql602/sql602_sim.hpp"
#include "tests/support/test_certs.hpp"

namespace edgerelay::testing {
namespace {

namespace ssl = boost::asio::ssl;
using namespace std::chrono_literals;

const test::test_certs& certs() {
  return test::get_test_certs();
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

/// A private temporary folder, removed with its files at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/edgerelay-tls-test-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = made;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  /// Replaces `name` by rename (readers never see half a file); returns its path.
  std::string write(const std::string& name, const std::string& content) const {
    const std::string tmp = path(name + ".tmp");
    std::ofstream(tmp, std::ios::binary) << content;
    std::filesystem::rename(tmp, path(name));
    return path(name);
  }

 private:
  std::string dir_;
};

/// Redirects this process's stderr (where the gateway's operator log goes) to a file, so a test
/// can wait for a log line; restores it on destruction.
class stderr_capture {
 public:
  explicit stderr_capture(const temp_dir& dir) : path_(dir.path("stderr.log")) {
    std::fflush(stderr);
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0) throw std::runtime_error("cannot open " + path_);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~stderr_capture() {
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;

  /// Waits (bounded) until the captured text contains `needle`.
  bool wait_for(const std::string& needle, std::chrono::milliseconds limit = 5s) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (text().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    }
    return text().find(needle) != std::string::npos;
  }
  std::string text() const { return read_file(path_); }

 private:
  std::string path_;
  int saved_ = -1;
};

/// Polls `probe` until it returns `want` (bounded).
template <class Probe, class T>
bool eventually(Probe probe, const T& want, std::chrono::milliseconds limit = 5s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (probe() == want) return true;
    std::this_thread::sleep_for(50ms);
  }
  return probe() == want;
}

// ---- the TLS client ------------------------------------------------------------------------------

struct tls_options {
  std::string sni = "gw.test";            ///< empty: no SNI
  std::string verify_name = "gw.test";    ///< empty: the chain is verified, not the name
  const test::cert_pair* cert = nullptr;  ///< client certificate (mTLS)
  int max_version = 0;                    ///< e.g. TLS1_2_VERSION; 0: the library's highest
  bool legacy = false;                    ///< security level 0, so the client itself may offer TLS 1.0/1.1
  std::vector<std::string> alpn;          ///< protocols offered, in order
};

ssl::context make_client_ctx(const tls_options& o) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(certs().ca);
  ctx.set_verify_mode(ssl::verify_peer);
  SSL_CTX* native = ctx.native_handle();
  if (o.cert != nullptr) {
    ctx.use_certificate_chain_file(o.cert->cert);
    ctx.use_private_key_file(o.cert->key, ssl::context::pem);
  }
  if (o.legacy) {
    SSL_CTX_set_security_level(native, 0);
    SSL_CTX_set_cipher_list(native, "DEFAULT@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(native, TLS1_VERSION);
  }
  if (o.max_version != 0) SSL_CTX_set_max_proto_version(native, o.max_version);
  if (!o.alpn.empty()) {
    std::vector<unsigned char> wire;
    for (const auto& p : o.alpn) {
      wire.push_back(static_cast<unsigned char>(p.size()));
      wire.insert(wire.end(), p.begin(), p.end());
    }
    SSL_CTX_set_alpn_protos(native, wire.data(), static_cast<unsigned>(wire.size()));
  }
  return ctx;
}

/// A TLS client connection to the gateway. Each operation runs the private io_context for at most
/// the timeout, so a test never hangs; reads and writes throw on errors like harness `client`.
class tls_client {
 public:
  explicit tls_client(const tcp::endpoint& at, const tls_options& o = {}, std::chrono::milliseconds timeout = 10s)
      : ctx_(make_client_ctx(o)), stream_(io_, ctx_), timeout_(timeout) {
    stream_.next_layer().connect(at);
    SSL* native = stream_.native_handle();
    // SSL_set_tlsext_host_name() without its macro's C cast.
    if (!o.sni.empty()) {
      SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(o.sni.c_str()));
    }
    if (!o.verify_name.empty()) SSL_set1_host(native, o.verify_name.c_str());
  }

  /// The client handshake; the error (with OpenSSL's reason in its message) or success.
  error_code handshake() {
    return run(timeout_, [this](auto h) { stream_.async_handshake(ssl::stream_base::client, h); });
  }

  void send(const bytes& b) {
    check("write", run(timeout_, [&](auto h) { net::async_write(stream_, net::buffer(b), h); }));
  }
  void send(const std::string& s) { send(to_bytes(s)); }

  bytes read_exact(std::size_t n) {
    bytes out(n);
    check("read of " + std::to_string(n) + " bytes",
          run(timeout_, [&](auto h) { net::async_read(stream_, net::buffer(out), h); }));
    return out;
  }

  /// Reads an HTTP response head (through the empty line, at most 8 KiB).
  std::string read_head() {
    std::string head;
    while (head.size() < 8192 && head.find("\r\n\r\n") == std::string::npos) head += to_text(read_exact(1));
    return head;
  }

  /// Sends `data` while reading as many bytes back (an echo through the tunnel); returns them.
  bytes echo(const bytes& data, std::chrono::milliseconds limit) {
    bytes back(data.size());
    check("echo of " + std::to_string(data.size()) + " bytes",
          run(
              limit, [&](auto h) { net::async_write(stream_, net::buffer(data), h); },
              [&](auto h) { net::async_read(stream_, net::buffer(back), h); }));
    return back;
  }

  /// Reads once and returns how that ended: success when data came, net::error::eof for the
  /// gateway's close_notify, ssl::error::stream_truncated for a FIN without one, a reset, or
  /// net::error::timed_out after `limit`.
  error_code read_outcome(std::chrono::milliseconds limit) {
    std::array<std::uint8_t, 256> buf{};
    return run(limit, [&](auto h) { stream_.async_read_some(net::buffer(buf), h); });
  }

  /// True if the gateway ends the connection (close_notify, FIN, reset or an alert) within `limit`
  /// without sending data first.
  bool closed_within(std::chrono::milliseconds limit) {
    const error_code ec = read_outcome(limit);
    return ec && ec != net::error::timed_out;
  }

  /// Sends close_notify and waits for the gateway's (after it sent its own, the TLS shutdown ends).
  error_code shutdown() {
    return run(timeout_, [this](auto h) { stream_.async_shutdown(h); });
  }

  std::string version() { return SSL_get_version(stream_.native_handle()); }

  std::string alpn() {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(stream_.native_handle(), &p, &len);
    return p == nullptr ? "" : std::string(reinterpret_cast<const char*>(p), len);
  }

  /// The subject CN of the certificate the gateway presented ("" when none).
  std::string peer_cn() {
    X509* cert = SSL_get1_peer_certificate(stream_.native_handle());
    if (cert == nullptr) return "";
    std::array<char, 256> cn{};
    const int n =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn.data(), static_cast<int>(cn.size()));
    X509_free(cert);
    return n > 0 ? std::string(cn.data(), static_cast<std::size_t>(n)) : "";
  }

 private:
  /// Starts each operation with a handler that records its error, runs them all for at most
  /// `limit`; the first error, or net::error::timed_out (the socket is then closed).
  template <class... Start>
  error_code run(std::chrono::milliseconds limit, Start&&... start) {
    std::array<std::optional<error_code>, sizeof...(Start)> results;
    std::size_t i = 0;
    io_.restart();
    (start([slot = &results[i++]](error_code ec, auto&&...) { *slot = ec; }), ...);
    io_.run_for(limit);
    for (const auto& r : results) {
      if (!r) {
        error_code ignored;
        stream_.next_layer().close(ignored);
        io_.restart();
        io_.run_for(1s);  // the cancelled handlers run before `results` goes away
        return net::error::timed_out;
      }
    }
    for (const auto& r : results) {
      if (*r) return *r;
    }
    return {};
  }

  static void check(const std::string& what, const error_code& ec) {
    if (ec) throw std::runtime_error("TLS " + what + ": " + ec.message());
  }

  net::io_context io_;
  ssl::context ctx_;
  ssl::stream<tcp::socket> stream_;
  std::chrono::milliseconds timeout_;
};

std::string hex_byte(std::uint8_t b) {
  std::array<char, 8> buf{};
  std::snprintf(buf.data(), buf.size(), "0x%02x", b);
  return buf.data();
}

/// Handshake, then `request` after the SOCKS5 no-auth greeting: "reply 0xNN", or where the
/// gateway stopped it: "handshake: <reason>" or "closed: <what>". With TLS 1.3 the server checks a
/// client certificate after the client's handshake has ended, so an mTLS refusal may show as
/// "closed".
std::string socks5_over_tls(tls_client& c, const bytes& request) {
  if (const auto ec = c.handshake()) return "handshake: " + ec.message();
  try {
    return "reply " + hex_byte(socks5_exchange(c, request)[1]);
  } catch (const std::exception& e) {
    return std::string("closed: ") + e.what();
  }
}

/// The same for a SOCKS4 CONNECT: "reply 0x5a", ...
std::string socks4_over_tls(tls_client& c, const bytes& request) {
  if (const auto ec = c.handshake()) return "handshake: " + ec.message();
  try {
    c.send(request);
    return "reply " + hex_byte(c.read_exact(8)[1]);
  } catch (const std::exception& e) {
    return std::string("closed: ") + e.what();
  }
}

/// The same for an HTTP CONNECT: the status line of the reply.
std::string connect_over_tls(tls_client& c, const tcp::endpoint& target) {
  if (const auto ec = c.handshake()) return "handshake: " + ec.message();
  const std::string where = target.address().to_string() + ":" + std::to_string(target.port());
  try {
    c.send("CONNECT " + where + " HTTP/1.1\r\nHost: " + where + "\r\n\r\n");
    const std::string head = c.read_head();
    return head.substr(0, head.find("\r\n"));
  } catch (const std::exception& e) {
    return std::string("closed: ") + e.what();
  }
}

bool refused(const std::string& outcome) {
  return outcome.rfind("handshake: ", 0) == 0 || outcome.rfind("closed: ", 0) == 0;
}

/// One round trip through an open tunnel to an echo backend.
std::string echoes(tls_client& c, const std::string& text) {
  try {
    return to_text(c.echo(to_bytes(text), 5s));
  } catch (const std::exception& e) {
    return e.what();
  }
}

// ---- a TLS backend -----------------------------------------------------------------------------

/// A loopback TLS echo server with the test CA's `server` certificate (CN gw.test) on its own
/// thread: a backend configured with `tls`. Records the SNI of each completed handshake. After the
/// client's close_notify it sends "got N bytes" (N: what it echoed), then its own close_notify.
class tls_echo_backend {
 public:
  tls_echo_backend()
      : ctx_(server_context()), server_([this](tcp::socket s) {
          {
            std::lock_guard lock(mu_);
            ++accepted_;
          }
          return serve(std::move(s));
        }) {}
  tls_echo_backend(const tls_echo_backend&) = delete;
  tls_echo_backend& operator=(const tls_echo_backend&) = delete;

  std::uint16_t port() const { return server_.port(); }
  /// The SNI of each completed handshake, in order ("" when the client sent none).
  std::vector<std::string> handshakes() const {
    std::lock_guard lock(mu_);
    return handshakes_;
  }
  /// How many connections were accepted (TLS or not).
  std::size_t accepted() const {
    std::lock_guard lock(mu_);
    return accepted_;
  }

 private:
  static ssl::context server_context() {
    ssl::context ctx(ssl::context::tls_server);
    ctx.use_certificate_chain_file(certs().server.cert);
    ctx.use_private_key_file(certs().server.key, ssl::context::pem);
    return ctx;
  }

  net::awaitable<void> serve(tcp::socket s) {
    ssl::stream<tcp::socket> st(std::move(s), ctx_);
    auto [hec] = co_await st.async_handshake(ssl::stream_base::server, use_ec);
    if (hec) co_return;
    {
      const char* sni = SSL_get_servername(st.native_handle(), TLSEXT_NAMETYPE_host_name);
      std::lock_guard lock(mu_);
      handshakes_.emplace_back(sni == nullptr ? "" : sni);
    }
    std::vector<std::uint8_t> buf(64 * 1024);
    std::size_t total = 0;
    error_code end;
    for (;;) {
      auto [ec, n] = co_await st.async_read_some(net::buffer(buf), use_ec);
      if (ec) {
        end = ec;
        break;
      }
      total += n;
      auto [wec, w] = co_await net::async_write(st, net::buffer(buf.data(), n), use_ec);
      if (wec) co_return;
    }
    if (end == net::error::eof) {  // the client's close_notify: a half-close, so answer it
      const std::string reply = "got " + std::to_string(total) + " bytes";
      co_await net::async_write(st, net::buffer(reply), use_ec);
    }
    co_await st.async_shutdown(use_ec);
  }

  ssl::context ctx_;
  mutable std::mutex mu_;
  std::vector<std::string> handshakes_;
  std::size_t accepted_ = 0;
  loopback_server server_;  // last: stops before the state above goes
};

// ---- configs -------------------------------------------------------------------------------------

/// `tls: {...}` for a listener with the `server` certificate and `extra` keys.
std::string listener_tls(const std::string& extra = "") {
  return "tls: {cert: " + quoted(certs().server.cert) + ", key: " + quoted(certs().server.key) + extra + "}";
}

const std::string allow_loopback =
    "  - {name: loopback, action: allow, from: [\"127.0.0.0/8\"], to: [\"127.0.0.0/8\"]}\n";

std::string config(const std::string& listeners, const std::string& rules, const std::string& extra = "",
                   const std::string& limits = "handshake_timeout: 2s, idle_timeout: 60s") {
  return "listeners:\n" + listeners + extra + "rules:\n" + rules + "limits: {" + limits +
         ", connect_timeout: 2s, shutdown_grace: 1s}\n"
         "log: {level: error, access: off}\n";
}

std::string backend_line(const std::string& name, std::uint16_t port, const std::string& tls = "") {
  return "  - {name: " + name + ", host: 127.0.0.1, portbase: " + std::to_string(port - 1) +
         (tls.empty() ? "" : ", tls: " + tls) + "}\n";
}

class TlsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(certs().error, ""); }
};

tls_options with_cert(const test::cert_pair& c) {
  tls_options o;
  o.cert = &c;
  return o;
}

tls_options with_max_version(int version, tls_options o = {}) {
  o.max_version = version;
  return o;
}

// The helpers themselves, without the gateway: the TLS client against the TLS backend.
TEST_F(TlsSessionTest, TestHelpersTlsClientAndTlsBackendTalk) {
  tls_echo_backend b;
  tls_client c(tcp::endpoint(net::ip::address_v4::loopback(), b.port()));
  ASSERT_FALSE(c.handshake());
  EXPECT_EQ(c.version(), "TLSv1.3");
  EXPECT_EQ(c.peer_cn(), "gw.test");
  const bytes payload = pattern(1024 * 1024, 3);
  EXPECT_TRUE(c.echo(payload, 10s) == payload);
  EXPECT_EQ(b.handshakes(), std::vector<std::string>{"gw.test"});
  EXPECT_FALSE(c.closed_within(100ms)) << "an idle open connection counted as closed";
  tls_options wrong;
  wrong.verify_name = "wrong.test";
  tls_client w(tcp::endpoint(net::ip::address_v4::loopback(), b.port()), wrong);
  EXPECT_TRUE(w.handshake()) << "the client must verify the server's name";
}

// ---- mTLS ----------------------------------------------------------------------------------------

TEST_F(TlsSessionTest, MutualTlsAcceptsAClientCertificateOfTheCa) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " +
                        listener_tls(", client_ca: " + quoted(certs().ca)) + "}\n",
                    allow_loopback));
  for (const int version : {0, TLS1_2_VERSION}) {
    tls_client c(gw.endpoint(), with_max_version(version, with_cert(certs().client)));
    ASSERT_EQ(socks5_over_tls(c, socks5_connect_request(echo.endpoint())), "reply 0x00") << version;
    EXPECT_EQ(echoes(c, "alice was here"), "alice was here");
    EXPECT_EQ(c.version(), version == 0 ? "TLSv1.3" : "TLSv1.2");
  }
}

TEST_F(TlsSessionTest, MutualTlsRefusesNoCertificateAndAForeignCaCertificate) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " +
                        listener_tls(", client_ca: " + quoted(certs().ca)) + "}\n",
                    allow_loopback));
  for (const int version : {0, TLS1_2_VERSION}) {
    tls_client none(gw.endpoint(), with_max_version(version));
    const std::string without = socks5_over_tls(none, socks5_connect_request(echo.endpoint()));
    EXPECT_TRUE(refused(without)) << "no client certificate, max version " << version << ": " << without;
    tls_client foreign(gw.endpoint(), with_max_version(version, with_cert(certs().foreign_client)));
    const std::string other = socks5_over_tls(foreign, socks5_connect_request(echo.endpoint()));
    EXPECT_TRUE(refused(other)) << "certificate of another CA, max version " << version << ": " << other;
  }
  EXPECT_TRUE(echo.peers().empty()) << "a refused client reached the backend";
}

// ---- the certificate identity in rules -----------------------------------------------------------

/// Listener `mtls` trusts both test CAs (so mallory's certificate verifies), `anon` is TLS without
/// client certificates; only alice may connect. Certificate identities need no `users` entry.
std::string identity_config() {
  return config("  - {name: mtls, bind: \"127.0.0.1:0\", protocols: [socks5, socks4, http], " +
                    listener_tls(", client_ca: " + quoted(certs().dir + "/both_cas.pem")) +
                    "}\n"
                    "  - {name: anon, bind: \"127.0.0.1:0\", protocols: [socks5, socks4, http], " +
                    listener_tls() + "}\n",
                "  - {name: alice-only, action: allow, users: [alice], to: [\"127.0.0.0/8\"]}\n");
}

class TlsIdentityTest : public TlsSessionTest {
 protected:
  void SetUp() override {
    TlsSessionTest::SetUp();
    std::ofstream(certs().dir + "/both_cas.pem") << read_file(certs().ca) << read_file(certs().other_ca);
  }
};

TEST_F(TlsIdentityTest, RuleWithUsersAllowsAliceAndDeniesOtherIdentitiesWithSocks5Reply02) {
  backend echo(backend_mode::echo);
  gateway gw(identity_config());
  {
    tls_client alice(gw.endpoint("mtls"), with_cert(certs().client));
    ASSERT_EQ(socks5_over_tls(alice, socks5_connect_request(echo.endpoint())), "reply 0x00");
    EXPECT_EQ(echoes(alice, "identity alice"), "identity alice");
  }
  struct denied_case {
    const char* who;
    std::string listener;
    tls_options options;
  };
  for (const auto& d : {denied_case{"mallory (CN, other CA)", "mtls", with_cert(certs().foreign_client)},
                        denied_case{"bob@example.test (SAN only)", "mtls", with_cert(certs().client_san_only)},
                        denied_case{"no certificate", "anon", tls_options{}}}) {
    tls_client c(gw.endpoint(d.listener), d.options);
    EXPECT_EQ(socks5_over_tls(c, socks5_connect_request(echo.endpoint())), "reply 0x02") << d.who;
  }
  EXPECT_EQ(echo.peers().size(), 1u) << "only alice's session may reach the backend";
}

TEST_F(TlsIdentityTest, CertificateIdentityOverridesTheSocks4UserId) {
  backend echo(backend_mode::echo);
  gateway gw(identity_config());
  {
    tls_client mallory(gw.endpoint("mtls"), with_cert(certs().foreign_client));
    EXPECT_EQ(socks4_over_tls(mallory, socks4_connect_request(echo.endpoint(), "alice")), "reply 0x5b")
        << "mallory's certificate claiming SOCKS4 user alice";
  }
  {
    tls_client alice(gw.endpoint("mtls"), with_cert(certs().client));
    ASSERT_EQ(socks4_over_tls(alice, socks4_connect_request(echo.endpoint(), "mallory")), "reply 0x5a")
        << "alice's certificate with SOCKS4 user mallory";
    EXPECT_EQ(echoes(alice, "socks4 over tls"), "socks4 over tls");
  }
}

TEST_F(TlsIdentityTest, HttpConnectOverMutualTlsUsesTheIdentity) {
  backend echo(backend_mode::echo);
  gateway gw(identity_config());
  {
    tls_client alice(gw.endpoint("mtls"), with_cert(certs().client));
    ASSERT_EQ(connect_over_tls(alice, echo.endpoint()).substr(0, 12), "HTTP/1.1 200");
    EXPECT_EQ(echoes(alice, "connect as alice"), "connect as alice");
  }
  tls_client mallory(gw.endpoint("mtls"), with_cert(certs().foreign_client));
  EXPECT_EQ(connect_over_tls(mallory, echo.endpoint()).substr(0, 12), "HTTP/1.1 403");
}

TEST_F(TlsIdentityTest, CertificateWithoutACommonNameIsKnownByItsFirstEmailSan) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: mtls, bind: \"127.0.0.1:0\", protocols: [socks5], " +
                        listener_tls(", client_ca: " + quoted(certs().ca)) + "}\n",
                    "  - {name: bob-only, action: allow, users: [\"bob@example.test\"], to: [\"127.0.0.0/8\"]}\n"));
  {
    tls_client bob(gw.endpoint("mtls"), with_cert(certs().client_san_only));
    ASSERT_EQ(socks5_over_tls(bob, socks5_connect_request(echo.endpoint())), "reply 0x00");
    EXPECT_EQ(echoes(bob, "identity bob"), "identity bob");
  }
  tls_client alice(gw.endpoint("mtls"), with_cert(certs().client));
  EXPECT_EQ(socks5_over_tls(alice, socks5_connect_request(echo.endpoint())), "reply 0x02");
}

TEST_F(TlsSessionTest, RecheckAfterAReloadClosesExactlyTheTunnelsOfANowDeniedIdentity) {
  backend echo(backend_mode::echo);
  temp_dir dir;
  const auto config_allowing = [](const std::string& users) {
    return config("  - {name: mtls, bind: \"127.0.0.1:0\", protocols: [socks5], " +
                      listener_tls(", client_ca: " + quoted(certs().ca)) + "}\n",
                  "  - {name: by-identity, action: allow, users: [" + users + "], to: [\"127.0.0.0/8\"]}\n",
                  "reload: {recheck_sessions: true}\n");
  };
  const std::string file = dir.write("edgerelay.yaml", config_allowing("alice, \"bob@example.test\""));
  auto gw = gateway::from_file(file);
  tls_client alice(gw->endpoint("mtls"), with_cert(certs().client));
  ASSERT_EQ(socks5_over_tls(alice, socks5_connect_request(echo.endpoint())), "reply 0x00");
  tls_client bob(gw->endpoint("mtls"), with_cert(certs().client_san_only));
  ASSERT_EQ(socks5_over_tls(bob, socks5_connect_request(echo.endpoint())), "reply 0x00");
  dir.write("edgerelay.yaml", config_allowing("\"bob@example.test\""));
  gw->server().reload();
  EXPECT_TRUE(alice.closed_within(5s)) << "alice's tunnel survived a reload whose rules deny alice";
  EXPECT_EQ(echoes(bob, "bob stays"), "bob stays");
}

// ---- SNI -----------------------------------------------------------------------------------------

TEST_F(TlsSessionTest, SniChoosesTheCertificate) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " +
                        listener_tls(", certs: [{cert: " + quoted(certs().server2.cert) +
                                     ", key: " + quoted(certs().server2.key) + "}]") +
                        "}\n",
                    allow_loopback));
  struct sni_case {
    std::string sni;
    std::string expected_cn;
  };
  for (const auto& s :
       {sni_case{"other.test", "other.test"}, sni_case{"gw.test", "gw.test"}, sni_case{"alt.gw.test", "gw.test"},
        sni_case{"unknown.test", "gw.test"}, sni_case{"", "gw.test"}}) {
    tls_options o;
    o.sni = s.sni;
    o.verify_name = s.expected_cn;
    tls_client c(gw.endpoint(), o);
    ASSERT_EQ(socks5_over_tls(c, socks5_connect_request(echo.endpoint())), "reply 0x00") << "SNI " << s.sni;
    EXPECT_EQ(c.peer_cn(), s.expected_cn) << "SNI " << s.sni;
    EXPECT_EQ(echoes(c, "sni " + s.sni), "sni " + s.sni);
  }
}

// ---- bulk integrity ------------------------------------------------------------------------------

constexpr std::size_t bulk_bytes = 64u * 1024 * 1024;

TEST_F(TlsSessionTest, SixtyFourMebibytesEachWayThroughSocks5OverTls) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5, http], " + listener_tls() + "}\n",
                    allow_loopback));
  tls_client c(gw.endpoint());
  ASSERT_EQ(socks5_over_tls(c, socks5_connect_request(echo.endpoint())), "reply 0x00");
  EXPECT_EQ(c.version(), "TLSv1.3");
  const bytes payload = pattern(bulk_bytes, 5);
  const bytes back = c.echo(payload, 120s);
  EXPECT_TRUE(back == payload) << "64 MiB came back altered";
}

TEST_F(TlsSessionTest, SixtyFourMebibytesEachWayThroughHttpConnectOverTls) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5, http], " + listener_tls() + "}\n",
                    allow_loopback));
  tls_client c(gw.endpoint());
  ASSERT_EQ(connect_over_tls(c, echo.endpoint()).substr(0, 12), "HTTP/1.1 200");
  const bytes payload = pattern(bulk_bytes, 6);
  const bytes back = c.echo(payload, 120s);
  EXPECT_TRUE(back == payload) << "64 MiB came back altered";
}

TEST_F(TlsSessionTest, RequestAndFirstDataInOneTlsRecordReachTheBackend) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5, http], " + listener_tls() + "}\n",
                    allow_loopback));
  {
    tls_client c(gw.endpoint());
    ASSERT_FALSE(c.handshake());
    bytes all = socks5_greeting_noauth();
    const bytes request = socks5_connect_request(echo.endpoint());
    all.insert(all.end(), request.begin(), request.end());
    all.insert(all.end(), {'e', 'a', 'r', 'l', 'y'});
    c.send(all);  // one write: one TLS record
    EXPECT_EQ(c.read_exact(2), (bytes{0x05, 0x00}));
    EXPECT_EQ(c.read_exact(10)[1], 0x00);
    EXPECT_EQ(to_text(c.read_exact(5)), "early");
  }
  tls_client c(gw.endpoint());
  ASSERT_FALSE(c.handshake());
  const std::string where = "127.0.0.1:" + std::to_string(echo.port());
  c.send("CONNECT " + where + " HTTP/1.1\r\nHost: " + where + "\r\n\r\nearly bytes");
  EXPECT_EQ(c.read_head().substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(to_text(c.read_exact(11)), "early bytes");
}

TEST_F(TlsSessionTest, Sql602HttpTunnelInsideTls) {
  sql602::server db;
  gateway gw(config(
      "  - {name: test, bind: \"127.0.0.1:0\", protocols: [http, socks5], sql602_tunnel: sql, " + listener_tls() +
          "}\n",
      "  - {name: to-sql, action: allow, from: [\"127.0.0.0/8\"], to: [\"backend:sql\"]}\n",
      "backends:\n  - {name: sql, host: 127.0.0.1, portbase: " + std::to_string(db.portbase()) + ", kind: sql602}\n"));
  tls_client c(gw.endpoint());
  ASSERT_FALSE(c.handshake());
  // docs/602sql.md: DT_VERSION, then the keep-alive DT_REQUEST, answered by `FE 00 00 00`.
  const bytes version{0x00, 0x00, 0x0B, 0x00};
  c.send(sql602::tunnel_post(0xF1, version));
  c.send(sql602::tunnel_post(0xFF, bytes{0x35, 0x35}));
  const bytes expected = sql602::tunnel_response(0xFE, bytes{0x00, 0x00, 0x00});
  EXPECT_EQ(c.read_exact(expected.size()), expected);
  c.send(sql602::raw_close_frame());
  const auto got = db.wait_received(0, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], (sql602::msg{0xF1, version}));
  EXPECT_EQ(got[1], (sql602::msg{0xFF, bytes{0x35, 0x35}}));
  EXPECT_EQ(got[2], (sql602::msg{0xEE, bytes{}}));
  EXPECT_TRUE(c.closed_within(3s));
}

// ---- plaintext on TLS listeners ------------------------------------------------------------------

TEST_F(TlsSessionTest, RequiredTlsListenerClosesPlaintextClientsWithoutAReply) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5, socks4, http], " +
                        listener_tls(", required: true") + "}\n",
                    allow_loopback));
  const std::string connect = "CONNECT 127.0.0.1:" + std::to_string(echo.port()) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const bytes& hello : {socks5_greeting_noauth(), socks4_connect_request(echo.endpoint()), to_bytes(connect)}) {
    client plain(gw.endpoint(), 5s);
    plain.send(hello);
    EXPECT_EQ(to_text(plain.read_to_eof()), "") << "reply to plaintext starting " << hex_byte(hello[0]);
  }
  EXPECT_TRUE(echo.peers().empty());
  tls_client c(gw.endpoint());
  ASSERT_EQ(socks5_over_tls(c, socks5_connect_request(echo.endpoint())), "reply 0x00");
  EXPECT_EQ(echoes(c, "tls still works"), "tls still works");
}

TEST_F(TlsSessionTest, OptionalTlsListenerServesTlsAndPlaintextOnOnePort) {
  backend echo(backend_mode::echo);
  gateway gw(
      config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5, socks4, http], " + listener_tls() + "}\n",
             allow_loopback));
  {
    client plain(gw.endpoint());
    ASSERT_EQ(socks5_connect(plain, echo.endpoint())[1], 0x00);
    plain.send(std::string("plain socks5"));
    EXPECT_EQ(to_text(plain.read_exact(12)), "plain socks5");
  }
  {
    client plain(gw.endpoint());
    plain.send(socks4_connect_request(echo.endpoint()));
    ASSERT_EQ(plain.read_exact(8)[1], 0x5A);
  }
  {
    client plain(gw.endpoint());
    plain.send("CONNECT 127.0.0.1:" + std::to_string(echo.port()) + " HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(to_text(plain.read_exact(12)), "HTTP/1.1 200");
  }
  tls_client c(gw.endpoint());
  ASSERT_EQ(socks5_over_tls(c, socks5_connect_request(echo.endpoint())), "reply 0x00");
  EXPECT_EQ(echoes(c, "tls on the same port"), "tls on the same port");
  EXPECT_EQ(echo.wait_peers(4).size(), 4u);
}

// ---- versions and ALPN ---------------------------------------------------------------------------

TEST_F(TlsSessionTest, Tls13IsNegotiatedTls12AcceptedAndTls11And10Refused) {
  gateway gw(
      config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " + listener_tls() + "}\n", allow_loopback));
  {
    tls_client c(gw.endpoint());
    ASSERT_FALSE(c.handshake());
    EXPECT_EQ(c.version(), "TLSv1.3");
  }
  tls_options legacy;
  legacy.legacy = true;
  {
    // The same legacy client settings handshake fine up to TLS 1.2, so a failure below is the
    // server refusing the version.
    tls_client c(gw.endpoint(), with_max_version(TLS1_2_VERSION, legacy));
    ASSERT_FALSE(c.handshake());
    EXPECT_EQ(c.version(), "TLSv1.2");
  }
  for (const int version : {TLS1_1_VERSION, TLS1_VERSION}) {
    tls_client c(gw.endpoint(), with_max_version(version, legacy));
    const error_code ec = c.handshake();
    ASSERT_TRUE(ec) << "version " << version << " negotiated " << c.version();
    EXPECT_NE(ec.message().find("alert protocol version"), std::string::npos)
        << "version " << version << ": expected the server's protocol_version alert, got: " << ec.message();
  }
}

TEST_F(TlsSessionTest, MinVersion13RefusesTls12) {
  gateway gw(config(
      "  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " + listener_tls(", min_version: \"1.3\"") + "}\n",
      allow_loopback));
  {
    tls_client c(gw.endpoint(), with_max_version(TLS1_2_VERSION));
    const error_code ec = c.handshake();
    ASSERT_TRUE(ec) << "negotiated " << c.version();
    EXPECT_NE(ec.message().find("alert protocol version"), std::string::npos) << ec.message();
  }
  tls_client c(gw.endpoint());
  ASSERT_FALSE(c.handshake());
  EXPECT_EQ(c.version(), "TLSv1.3");
}

TEST_F(TlsSessionTest, AlpnSelectsHttp11OnlyOnHttpListenersAndNeverFailsOtherOffers) {
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [http, socks5], " + listener_tls() + "}\n",
                    allow_loopback));
  tls_options o;
  o.alpn = {"h2", "http/1.1"};
  {
    tls_client c(gw.endpoint(), o);
    ASSERT_FALSE(c.handshake());
    EXPECT_EQ(c.alpn(), "http/1.1");
  }
  o.alpn = {"h2"};
  {
    tls_client c(gw.endpoint(), o);
    ASSERT_FALSE(c.handshake()) << "an ALPN offer without http/1.1 must not fail the handshake";
    EXPECT_EQ(c.alpn(), "");
  }
  gateway socks_only(
      config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " + listener_tls() + "}\n", allow_loopback));
  o.alpn = {"http/1.1"};
  tls_client c(socks_only.endpoint(), o);
  ASSERT_FALSE(c.handshake());
  EXPECT_EQ(c.alpn(), "") << "a listener that does not speak http selected http/1.1";
}

// ---- reload --------------------------------------------------------------------------------------

/// The CN a new handshake sees ("handshake: <reason>" when it fails).
std::string served_cn(const tcp::endpoint& at) {
  tls_options o;
  o.sni = "";
  o.verify_name = "";  // the certificate changes under the test: verify the chain only
  tls_client c(at, o);
  if (const auto ec = c.handshake()) return "handshake: " + ec.message();
  return c.peer_cn();
}

TEST_F(TlsSessionTest, ReloadServesTheNewCertificateKeepsTunnelsAndABadKeyKeepsTheOldOne) {
  backend echo(backend_mode::echo);
  temp_dir dir;
  dir.write("gw.pem", read_file(certs().server.cert));
  dir.write("gw.key", read_file(certs().server.key));
  // Relative paths: resolved against the config file's folder.
  const std::string config_file =
      dir.write("edgerelay.yaml", config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], "
                                         "tls: {cert: gw.pem, key: gw.key}}\n",
                                         allow_loopback));
  auto gw = gateway::from_file(config_file);
  EXPECT_EQ(served_cn(gw->endpoint()), "gw.test");

  tls_options any_name;
  any_name.verify_name = "";
  tls_client before(gw->endpoint(), any_name);
  ASSERT_EQ(socks5_over_tls(before, socks5_connect_request(echo.endpoint())), "reply 0x00");
  EXPECT_EQ(echoes(before, "before the reload"), "before the reload");

  // Good reload: server2's files under the same names.
  dir.write("gw.key", read_file(certs().server2.key));
  dir.write("gw.pem", read_file(certs().server2.cert));
  gw->server().reload();
  ASSERT_TRUE(eventually([&] { return served_cn(gw->endpoint()); }, std::string("other.test")))
      << "a new handshake after the reload sees " << served_cn(gw->endpoint());
  EXPECT_EQ(echoes(before, "across the reload"), "across the reload") << "an open tunnel stopped";
  tls_client after(gw->endpoint(), any_name);
  ASSERT_EQ(socks5_over_tls(after, socks5_connect_request(echo.endpoint())), "reply 0x00");
  EXPECT_EQ(after.peer_cn(), "other.test");

  // Bad reload: a key file without a key (and the first certificate back): the reload fails.
  {
    stderr_capture log(dir);
    dir.write("gw.pem", read_file(certs().server.cert));
    dir.write("gw.key", read_file(certs().not_pem));
    gw->server().reload();
    ASSERT_TRUE(log.wait_for("keeping generation")) << "no failed reload logged; stderr:\n" << log.text();
  }
  EXPECT_EQ(served_cn(gw->endpoint()), "other.test") << "a failed reload must keep the old certificate";
  EXPECT_EQ(echoes(before, "after a bad reload"), "after a bad reload");
  EXPECT_EQ(echoes(after, "still here"), "still here");
  tls_client last(gw->endpoint(), any_name);
  ASSERT_EQ(socks5_over_tls(last, socks5_connect_request(echo.endpoint())), "reply 0x00");
  EXPECT_EQ(echoes(last, "new session"), "new session");
}

// ---- backends over TLS ---------------------------------------------------------------------------

TEST_F(TlsSessionTest, BackendWithTlsIsDialledOverTlsAndVerified) {
  tls_echo_backend good;
  tls_echo_backend by_ip;
  tls_echo_backend misnamed;
  const std::string ca = quoted(certs().ca);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5, http]}\n",
                    "  - {name: backends, action: allow, to: [\"backend:secure\", \"backend:byip\", "
                    "\"backend:misnamed\"]}\n",
                    "backends:\n" + backend_line("secure", good.port(), "{ca: " + ca + ", server_name: gw.test}") +
                        backend_line("byip", by_ip.port(), "{ca: " + ca + "}") +
                        backend_line("misnamed", misnamed.port(), "{ca: " + ca + ", server_name: wrong.test}")));
  {
    client c(gw.endpoint());
    ASSERT_EQ(socks5_exchange(c, socks5_connect_domain("secure", good.port()))[1], 0x00);
    c.send(std::string("to a tls backend"));
    EXPECT_EQ(to_text(c.read_exact(16)), "to a tls backend");
    EXPECT_EQ(good.handshakes(), std::vector<std::string>{"gw.test"});
  }
  {
    // No server_name: the backend's host (an IP address: no SNI, the IP SAN is checked).
    client c(gw.endpoint());
    ASSERT_EQ(socks5_exchange(c, socks5_connect_domain("byip", by_ip.port()))[1], 0x00);
    c.send(std::string("by address"));
    EXPECT_EQ(to_text(c.read_exact(10)), "by address");
    EXPECT_EQ(by_ip.handshakes(), std::vector<std::string>{""});
  }
  {
    client c(gw.endpoint());
    EXPECT_EQ(socks5_exchange(c, socks5_connect_domain("misnamed", misnamed.port()))[1], 0x01)
        << "a backend certificate that does not match server_name";
    EXPECT_TRUE(misnamed.handshakes().empty());
    EXPECT_EQ(misnamed.accepted(), 1u) << "the gateway should have dialled (and refused) the backend";
  }
  {
    client c(gw.endpoint());
    c.send("CONNECT misnamed:" + std::to_string(misnamed.port()) + " HTTP/1.1\r\nHost: misnamed\r\n\r\n");
    EXPECT_EQ(to_text(c.read_exact(12)), "HTTP/1.1 502");
  }
}

/// A plain SOCKS5 listener whose rules allow the given backends (backend_lines: backend_line()s).
std::string plain_listener_to_backends(const std::string& names, const std::string& backend_lines) {
  std::string to;
  std::istringstream in(names);
  for (std::string n; in >> n;) to += (to.empty() ? "\"backend:" : ", \"backend:") + n + "\"";
  return config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5, http]}\n",
                "  - {name: backends, action: allow, to: [" + to + "]}\n", "backends:\n" + backend_lines);
}

std::string backend_tls_gw_test() {
  return "{ca: " + quoted(certs().ca) + ", server_name: gw.test}";
}

TEST_F(TlsSessionTest, BackendThatNeverAnswersTheTlsHandshakeIsABackendTlsFailure) {
  // Listening but never accepting: the kernel completes the TCP connect, nobody answers the
  // ClientHello.
  net::io_context io;
  tcp::acceptor silent(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
  gateway gw(plain_listener_to_backends("silent",
                                        backend_line("silent", silent.local_endpoint().port(), backend_tls_gw_test())));
  client c(gw.endpoint(), 8s);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(hex_byte(socks5_exchange(c, socks5_connect_domain("silent", silent.local_endpoint().port()))[1]), "0x01")
      << "a backend TLS handshake that never completes is a backend TLS failure";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 6s) << "not bounded by the 2 s connect timeout";
  client h(gw.endpoint(), 8s);
  h.send("CONNECT silent:" + std::to_string(silent.local_endpoint().port()) + " HTTP/1.1\r\nHost: silent\r\n\r\n");
  EXPECT_EQ(to_text(h.read_exact(12)), "HTTP/1.1 502");
}

TEST_F(TlsSessionTest, ClientHalfCloseReachesATlsBackendAsCloseNotify) {
  tls_echo_backend secure;
  gateway gw(plain_listener_to_backends("secure", backend_line("secure", secure.port(), backend_tls_gw_test())));
  client c(gw.endpoint());
  ASSERT_EQ(socks5_exchange(c, socks5_connect_domain("secure", secure.port()))[1], 0x00);
  const bytes payload = pattern(60000, 8);
  c.send(payload);
  EXPECT_TRUE(c.read_exact(payload.size()) == payload);
  c.shutdown_send();
  EXPECT_EQ(to_text(c.read_to_eof()), "got 60000 bytes") << "the backend's answer to the half-close";
}

TEST_F(TlsSessionTest, BackendHalfCloseReachesATlsClientAsCloseNotifyAndTheClientCanStillSend) {
  backend server(backend_mode::close_then_read);
  gateway gw(
      config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " + listener_tls() + "}\n", allow_loopback));
  tls_client c(gw.endpoint());
  ASSERT_EQ(socks5_over_tls(c, socks5_connect_request(server.endpoint())), "reply 0x00");
  EXPECT_EQ(to_text(c.read_exact(4)), "BYE\n");
  const error_code end = c.read_outcome(5s);
  EXPECT_EQ(end, net::error::eof) << "expected the gateway's close_notify, got: " << end.message();
  c.send(pattern(100000, 4));
  EXPECT_FALSE(c.shutdown()) << "the TLS shutdown after both close_notify alerts";
  ASSERT_TRUE(eventually([&] { return server.received_after_close(); }, std::vector<std::size_t>{100000}))
      << "the backend did not receive the bytes sent after its half-close";
}

TEST_F(TlsSessionTest, ForwardDoorWithTlsRelaysToPlainAndTlsBackends) {
  backend plain(backend_mode::greet_then_echo);
  tls_echo_backend secure;
  gateway gw(
      config("  - {name: door, bind: \"127.0.0.1:0\", forward: plain, " + listener_tls() +
                 "}\n"
                 "  - {name: sdoor, bind: \"127.0.0.1:0\", forward: secure, " +
                 listener_tls() + "}\n",
             "  - {name: doors, action: allow, from: [\"127.0.0.0/8\"], to: [\"backend:plain\", "
             "\"backend:secure\"]}\n",
             "backends:\n" + backend_line("plain", plain.port()) +
                 backend_line("secure", secure.port(), "{ca: " + quoted(certs().ca) + ", server_name: gw.test}")));
  {
    tls_client c(gw.endpoint("door"));
    ASSERT_FALSE(c.handshake());
    EXPECT_EQ(to_text(c.read_exact(6)), "HELLO\n");
    EXPECT_EQ(echoes(c, "native over tls"), "native over tls");
  }
  tls_client c(gw.endpoint("sdoor"));
  ASSERT_FALSE(c.handshake());
  EXPECT_EQ(echoes(c, "tls on both legs"), "tls on both legs");
  EXPECT_EQ(secure.handshakes(), std::vector<std::string>{"gw.test"});
}

// ---- handshake deadline --------------------------------------------------------------------------

TEST_F(TlsSessionTest, StalledClientHelloIsClosedAtTheHandshakeTimeout) {
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " + listener_tls() + "}\n",
                    allow_loopback, "", "handshake_timeout: 300ms"));
  client c(gw.endpoint(), 5s);
  // A handshake record header announcing 512 bytes and the first 3 of them; then nothing.
  const auto started = std::chrono::steady_clock::now();
  c.send(bytes{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01});
  EXPECT_TRUE(c.closed_within(5s)) << "a stalled TLS handshake was not closed";
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 250ms) << "closed before the handshake timeout";
  EXPECT_LT(took, 3s) << "closed long after the 300 ms handshake timeout";
}

TEST_F(TlsSessionTest, CompletedTlsHandshakeWithoutARequestIsClosedAtTheHandshakeTimeout) {
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " + listener_tls() + "}\n",
                    allow_loopback, "", "handshake_timeout: 300ms"));
  tls_client c(gw.endpoint());
  const auto started = std::chrono::steady_clock::now();
  ASSERT_FALSE(c.handshake());
  EXPECT_TRUE(c.closed_within(5s)) << "a TLS client that sends no request was not closed";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST_F(TlsSessionTest, IdleTlsTunnelIsClosedAtTheIdleTimeout) {
  backend echo(backend_mode::echo);
  gateway gw(config("  - {name: test, bind: \"127.0.0.1:0\", protocols: [socks5], " + listener_tls() + "}\n",
                    allow_loopback, "", "handshake_timeout: 2s, idle_timeout: 300ms"));
  tls_client c(gw.endpoint());
  ASSERT_EQ(socks5_over_tls(c, socks5_connect_request(echo.endpoint())), "reply 0x00");
  EXPECT_EQ(echoes(c, "then silence"), "then silence");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_within(5s)) << "an idle TLS tunnel was not closed";
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 200ms) << "closed before the idle timeout";
  EXPECT_LT(took, 3s) << "closed long after the 300 ms idle timeout";
}

}  // namespace
}  // namespace edgerelay::testing
