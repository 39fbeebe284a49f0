// tls_context: build errors, and TLS policy checked by in-memory handshakes over a BIO pair.
#include "tunnel/tls/tls_context.hpp"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/support/test_certs.hpp"

namespace edgerelay::tunnel {
namespace {

using test::get_test_certs;

struct ssl_free_fn {
  void operator()(SSL* p) const noexcept { SSL_free(p); }
};
struct ctx_free_fn {
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct session_free_fn {
  void operator()(SSL_SESSION* p) const noexcept { SSL_SESSION_free(p); }
};
using ssl_ptr = std::unique_ptr<SSL, ssl_free_fn>;
using ctx_ptr = std::unique_ptr<SSL_CTX, ctx_free_fn>;
using session_ptr = std::unique_ptr<SSL_SESSION, session_free_fn>;

class tls_context_test : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(get_test_certs().error, "") << "test certificates"; }
  const test::test_certs& certs() const { return get_test_certs(); }

  config::tls_files server_files() const {
    config::tls_files f;
    f.cert = certs().server.cert;
    f.key = certs().server.key;
    return f;
  }

  std::shared_ptr<ssl::context> server_ctx(const config::tls_files& f, bool alpn = false) const {
    auto r = make_server_context(f, alpn);
    EXPECT_EQ(r.error, "");
    EXPECT_TRUE(r.context);
    return r.context;
  }
};

/// A test client context: no verification unless a CA is given, versions as asked.
ctx_ptr client_ctx(int min_version = 0, int max_version = 0, const std::string& ca = {}) {
  ctx_ptr ctx(SSL_CTX_new(TLS_client_method()));
  // Security level 0 lets the client really offer TLS 1.0/1.1, so it is the server that refuses.
  SSL_CTX_set_security_level(ctx.get(), 0);
  if (min_version != 0) SSL_CTX_set_min_proto_version(ctx.get(), min_version);
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  if (min_version != 0 && min_version < TLS1_2_VERSION) SSL_CTX_set_cipher_list(ctx.get(), "ALL:@SECLEVEL=0");
  if (!ca.empty()) {
    EXPECT_EQ(SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr), 1);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

void use_client_cert(SSL_CTX* ctx, const test::cert_pair& p) {
  ASSERT_EQ(SSL_CTX_use_certificate_file(ctx, p.cert.c_str(), SSL_FILETYPE_PEM), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, p.key.c_str(), SSL_FILETYPE_PEM), 1);
}

/// A client and a server SSL joined by an in-memory BIO pair.
struct tls_pair {
  ssl_ptr client;
  ssl_ptr server;
  bool client_done = false;
  bool server_done = false;
  std::string client_error;  ///< OpenSSL reason when the client's handshake failed
  std::string server_error;

  tls_pair(SSL_CTX* client_ctx, SSL_CTX* server_ctx) : client(SSL_new(client_ctx)), server(SSL_new(server_ctx)) {
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    EXPECT_EQ(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0), 1);
    SSL_set_bio(client.get(), client_bio, client_bio);
    SSL_set_bio(server.get(), server_bio, server_bio);
    SSL_set_connect_state(client.get());
    SSL_set_accept_state(server.get());
  }

  static void step(SSL* ssl, bool& done, std::string& error) {
    if (done || !error.empty()) return;
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl);
    if (r == 1) {
      done = true;
      return;
    }
    const int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    const char* reason = ERR_reason_error_string(ERR_peek_error());
    error = reason != nullptr ? reason : "ssl error " + std::to_string(e);
    ERR_clear_error();
  }

  /// Runs both handshakes until each side is done or failed (bounded).
  tls_pair& handshake() {
    for (int i = 0; i < 50; ++i) {
      step(client.get(), client_done, client_error);
      step(server.get(), server_done, server_error);
      if ((client_done || !client_error.empty()) && (server_done || !server_error.empty())) break;
    }
    return *this;
  }

  bool ok() const { return client_done && server_done; }

  /// Lets the client process what the server sent after its handshake (TLS 1.3 tickets, alerts).
  /// Returns false when the connection failed.
  bool client_reads() {
    char byte = 0;
    ERR_clear_error();
    const int r = SSL_read(client.get(), &byte, 1);
    const int e = SSL_get_error(client.get(), r);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ;
  }
};

std::string subject_cn(const SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return {};
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

// ---- building contexts ------------------------------------------------------------------------

TEST_F(tls_context_test, server_context_builds_with_the_policy) {
  auto f = server_files();
  f.client_ca = certs().ca;
  f.certs.push_back({certs().server2.cert, certs().server2.key});
  auto ctx = server_ctx(f);
  ASSERT_TRUE(ctx);
  SSL_CTX* raw = ctx->native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(raw), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(raw), TLS1_3_VERSION);
  const auto options = SSL_CTX_get_options(raw);
  EXPECT_NE(options & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(options & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_NE(options & SSL_OP_CIPHER_SERVER_PREFERENCE, 0u);
  EXPECT_EQ(options & SSL_OP_NO_TICKET, 0u);
  EXPECT_NE(SSL_CTX_get_session_cache_mode(raw) & SSL_SESS_CACHE_SERVER, 0);
  EXPECT_EQ(SSL_CTX_get_verify_mode(raw), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);

  f.min_version = "1.3";
  auto ctx13 = server_ctx(f);
  ASSERT_TRUE(ctx13);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx13->native_handle()), TLS1_3_VERSION);
}

TEST_F(tls_context_test, missing_certificate_is_named) {
  auto f = server_files();
  f.cert = certs().dir + "/nope.pem";
  EXPECT_EQ(make_server_context(f, false).error, f.cert + ": cannot read certificate: No such file or directory");
}

TEST_F(tls_context_test, missing_key_is_named) {
  auto f = server_files();
  f.key = certs().dir + "/nope.key";
  const auto r = make_server_context(f, false);
  EXPECT_FALSE(r.context);
  EXPECT_EQ(r.error, f.key + ": cannot read private key: No such file or directory");
}

TEST_F(tls_context_test, key_of_another_certificate_is_refused) {
  auto f = server_files();
  f.key = certs().server2.key;
  const auto r = make_server_context(f, false);
  EXPECT_FALSE(r.context);
  EXPECT_EQ(r.error, f.key + ": key does not match certificate " + f.cert);
}

TEST_F(tls_context_test, mismatched_sni_entry_is_refused) {
  auto f = server_files();
  f.certs.push_back({certs().server2.cert, certs().client.key});
  EXPECT_EQ(make_server_context(f, false).error,
            certs().client.key + ": key does not match certificate " + certs().server2.cert);
}

TEST_F(tls_context_test, file_without_pem_gives_openssl_reason) {
  auto f = server_files();
  f.cert = certs().not_pem;
  EXPECT_EQ(make_server_context(f, false).error,
            f.cert + ": cannot load certificate chain: no start line (PEM routines)");
  f = server_files();
  f.key = certs().not_pem;
  EXPECT_EQ(make_server_context(f, false).error.rfind(f.key + ": cannot load private key: ", 0), 0u);
}

TEST_F(tls_context_test, bad_client_ca_is_refused) {
  auto f = server_files();
  f.client_ca = certs().not_pem;
  const auto r = make_server_context(f, false);
  EXPECT_FALSE(r.context);
  EXPECT_EQ(r.error.rfind(f.client_ca + ": cannot load client CA certificates: ", 0), 0u) << r.error;
  f.client_ca = certs().dir + "/nope-ca.pem";
  EXPECT_EQ(make_server_context(f, false).error, f.client_ca + ": cannot read client CA: No such file or directory");
}

TEST_F(tls_context_test, bad_min_version_and_no_certificate_are_refused) {
  auto f = server_files();
  f.min_version = "1.1";
  EXPECT_EQ(make_server_context(f, false).error,
            "tls: min_version '1.1' is not supported (expected \"1.2\" or \"1.3\")");
  EXPECT_EQ(make_server_context(config::tls_files{}, false).error, "tls: no certificate given (cert or certs)");
}

TEST_F(tls_context_test, client_context_errors_are_named) {
  EXPECT_EQ(make_client_context({certs().dir + "/nope.pem", "gw.test"}).error,
            certs().dir + "/nope.pem: cannot read CA: No such file or directory");
  const auto r = make_client_context({certs().not_pem, "gw.test"});
  EXPECT_FALSE(r.context);
  EXPECT_EQ(r.error.rfind(certs().not_pem + ": cannot load CA certificates: ", 0), 0u) << r.error;
  const auto system_store = make_client_context({"", "gw.test"});
  EXPECT_TRUE(system_store.context) << system_store.error;
}

// ---- versions, ciphers, renegotiation ---------------------------------------------------------

TEST_F(tls_context_test, default_client_negotiates_tls13) {
  auto server = server_ctx(server_files());
  auto client = client_ctx();
  tls_pair p(client.get(), server->native_handle());
  ASSERT_TRUE(p.handshake().ok()) << p.client_error << " / " << p.server_error;
  const auto info = negotiated(p.server.get());
  EXPECT_EQ(info.version, "TLSv1.3");
  EXPECT_FALSE(info.cipher.empty());
  EXPECT_EQ(info.alpn, "");
  EXPECT_FALSE(info.resumed);
  EXPECT_EQ(SSL_get_current_compression(p.server.get()), nullptr);
}

TEST_F(tls_context_test, tls12_client_gets_ecdhe_aead) {
  auto server = server_ctx(server_files());
  auto client = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  tls_pair p(client.get(), server->native_handle());
  ASSERT_TRUE(p.handshake().ok()) << p.client_error << " / " << p.server_error;
  const auto info = negotiated(p.server.get());
  EXPECT_EQ(info.version, "TLSv1.2");
  EXPECT_EQ(info.cipher.rfind("ECDHE-", 0), 0u) << info.cipher;
  EXPECT_TRUE(info.cipher.find("GCM") != std::string::npos || info.cipher.find("CHACHA20") != std::string::npos)
      << info.cipher;
}

TEST_F(tls_context_test, tls12_client_with_only_cbc_ciphers_is_refused) {
  auto server = server_ctx(server_files());
  auto client = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_set_cipher_list(client.get(), "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"), 1);
  tls_pair p(client.get(), server->native_handle());
  EXPECT_FALSE(p.handshake().ok());
  EXPECT_EQ(p.server_error, "no shared cipher");
}

TEST_F(tls_context_test, tls11_and_tls10_clients_are_refused) {
  auto server = server_ctx(server_files());
  for (const int version : {TLS1_1_VERSION, TLS1_VERSION}) {
    auto client = client_ctx(version, version);
    tls_pair p(client.get(), server->native_handle());
    EXPECT_FALSE(p.handshake().ok()) << version;
    EXPECT_EQ(p.server_error, "unsupported protocol") << version;
  }
}

TEST_F(tls_context_test, min_version_13_refuses_tls12_client) {
  auto f = server_files();
  f.min_version = "1.3";
  auto server = server_ctx(f);
  auto client = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  tls_pair p(client.get(), server->native_handle());
  EXPECT_FALSE(p.handshake().ok());
  EXPECT_EQ(p.server_error, "unsupported protocol");
}

/// Drives a client-initiated TLS 1.2 renegotiation; returns the client's failure reason, or
/// "renegotiated" when it completed.
std::string try_renegotiation(SSL_CTX* server) {
  auto client = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  SSL_CTX_clear_options(client.get(), SSL_OP_NO_RENEGOTIATION);
  tls_pair p(client.get(), server);
  if (!p.handshake().ok()) return "first handshake failed";
  if (SSL_renegotiate(p.client.get()) != 1) return "SSL_renegotiate refused locally";
  char byte = 0;
  for (int i = 0; i < 20; ++i) {
    ERR_clear_error();
    const int r = SSL_do_handshake(p.client.get());
    if (r == 1 && SSL_renegotiate_pending(p.client.get()) == 0) return "renegotiated";
    if (r != 1 && SSL_get_error(p.client.get(), r) == SSL_ERROR_SSL) {
      const char* reason = ERR_reason_error_string(ERR_peek_error());
      return reason != nullptr ? reason : "ssl error";
    }
    SSL_read(p.server.get(), &byte, 1);  // the server handles the ClientHello inside SSL_read
  }
  return "no outcome";
}

TEST_F(tls_context_test, renegotiation_is_refused) {
  auto server = server_ctx(server_files());
  SSL_CTX* raw = server->native_handle();
  EXPECT_EQ(try_renegotiation(raw), "no renegotiation");
  // OpenSSL 3 already refuses client-initiated renegotiation; SSL_OP_NO_RENEGOTIATION must hold
  // even where that default is lifted.
  SSL_CTX_set_options(raw, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  EXPECT_EQ(try_renegotiation(raw), "no renegotiation");
  // Control: the same exchange renegotiates without the option, so the checks above are real.
  SSL_CTX_clear_options(raw, SSL_OP_NO_RENEGOTIATION);
  EXPECT_EQ(try_renegotiation(raw), "renegotiated");
}

// ---- ALPN -------------------------------------------------------------------------------------

TEST_F(tls_context_test, alpn_selects_http11_when_offered) {
  static constexpr unsigned char offer[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  static constexpr unsigned char h2_only[] = {2, 'h', '2'};
  auto with_alpn = server_ctx(server_files(), true);
  auto without = server_ctx(server_files(), false);
  auto client = client_ctx();

  tls_pair a(client.get(), with_alpn->native_handle());
  ASSERT_EQ(SSL_set_alpn_protos(a.client.get(), offer, sizeof offer), 0);
  ASSERT_TRUE(a.handshake().ok());
  EXPECT_EQ(negotiated(a.server.get()).alpn, "http/1.1");
  EXPECT_EQ(negotiated(a.client.get()).alpn, "http/1.1");

  tls_pair b(client.get(), with_alpn->native_handle());
  ASSERT_EQ(SSL_set_alpn_protos(b.client.get(), h2_only, sizeof h2_only), 0);
  ASSERT_TRUE(b.handshake().ok()) << "no common protocol must not fail the handshake";
  EXPECT_EQ(negotiated(b.server.get()).alpn, "");

  tls_pair c(client.get(), without->native_handle());
  ASSERT_EQ(SSL_set_alpn_protos(c.client.get(), offer, sizeof offer), 0);
  ASSERT_TRUE(c.handshake().ok());
  EXPECT_EQ(negotiated(c.server.get()).alpn, "");
}

// ---- SNI --------------------------------------------------------------------------------------

TEST_F(tls_context_test, sni_picks_the_matching_certificate_else_the_default) {
  auto f = server_files();
  f.certs.push_back({certs().server2.cert, certs().server2.key});
  auto server = server_ctx(f);
  auto client = client_ctx(0, 0, certs().ca);
  struct sni_case {
    const char* sni;
    const char* cn;
  };
  for (const auto& c :
       {sni_case{"other.test", "other.test"}, sni_case{"OTHER.test", "other.test"}, sni_case{"gw.test", "gw.test"},
        sni_case{"alt.gw.test", "gw.test"}, sni_case{"unknown.test", "gw.test"}, sni_case{nullptr, "gw.test"}}) {
    tls_pair p(client.get(), server->native_handle());
    if (c.sni != nullptr) {
      ASSERT_EQ(prepare_client_ssl(p.client.get(), c.sni), "") << c.sni;
    }
    if (c.sni != nullptr && std::string(c.sni) == "unknown.test") {
      // Only SNI here: the default certificate does not cover the name.
      SSL_set_verify(p.client.get(), SSL_VERIFY_NONE, nullptr);
    }
    ASSERT_TRUE(p.handshake().ok()) << (c.sni ? c.sni : "(none)") << ": " << p.client_error;
    EXPECT_EQ(subject_cn(p.client.get()), c.cn) << (c.sni ? c.sni : "(none)");
    EXPECT_EQ(negotiated(p.server.get()).server_name, c.sni ? c.sni : "");
  }
}

TEST_F(tls_context_test, certs_list_alone_uses_its_first_entry_as_default) {
  config::tls_files f;
  f.certs.push_back({certs().server.cert, certs().server.key});
  f.certs.push_back({certs().server2.cert, certs().server2.key});
  auto server = server_ctx(f);
  auto client = client_ctx();
  tls_pair a(client.get(), server->native_handle());
  ASSERT_TRUE(a.handshake().ok());
  EXPECT_EQ(subject_cn(a.client.get()), "gw.test");
  tls_pair b(client.get(), server->native_handle());
  ASSERT_EQ(prepare_client_ssl(b.client.get(), "other.test"), "");
  ASSERT_TRUE(b.handshake().ok());
  EXPECT_EQ(subject_cn(b.client.get()), "other.test");
}

// ---- mTLS -------------------------------------------------------------------------------------

class mtls_test : public tls_context_test {
 protected:
  std::shared_ptr<ssl::context> mtls_server() const {
    auto f = server_files();
    f.client_ca = certs().ca;
    return server_ctx(f);
  }
};

TEST_F(mtls_test, client_without_certificate_is_refused) {
  auto server = mtls_server();
  auto client = client_ctx();
  tls_pair p(client.get(), server->native_handle());
  p.handshake();
  EXPECT_FALSE(p.server_done);
  EXPECT_EQ(p.server_error, "peer did not return a certificate");
  EXPECT_FALSE(p.client_reads()) << "the client learns of the refusal";
  EXPECT_EQ(peer_identity(p.server.get()), "");
}

TEST_F(mtls_test, client_from_another_ca_is_refused) {
  auto server = mtls_server();
  auto client = client_ctx();
  use_client_cert(client.get(), certs().foreign_client);
  tls_pair p(client.get(), server->native_handle());
  p.handshake();
  EXPECT_FALSE(p.server_done);
  EXPECT_EQ(p.server_error, "certificate verify failed");
  EXPECT_EQ(SSL_get_verify_result(p.server.get()), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(peer_identity(p.server.get()), "");
}

TEST_F(mtls_test, verified_client_identity_is_its_common_name) {
  auto server = mtls_server();
  auto client = client_ctx();
  use_client_cert(client.get(), certs().client);
  tls_pair p(client.get(), server->native_handle());
  ASSERT_TRUE(p.handshake().ok()) << p.client_error << " / " << p.server_error;
  EXPECT_TRUE(p.client_reads());
  EXPECT_EQ(peer_identity(p.server.get()), "alice");
  // The acceptable-CA list reached the client.
  const STACK_OF(X509_NAME)* names = SSL_get_client_CA_list(p.client.get());
  ASSERT_NE(names, nullptr);
  EXPECT_EQ(sk_X509_NAME_num(names), 1);
}

TEST_F(mtls_test, identity_falls_back_to_san_email_without_common_name) {
  auto server = mtls_server();
  auto client = client_ctx();
  use_client_cert(client.get(), certs().client_san_only);
  tls_pair p(client.get(), server->native_handle());
  ASSERT_TRUE(p.handshake().ok()) << p.client_error << " / " << p.server_error;
  EXPECT_EQ(peer_identity(p.server.get()), "bob@example.test");
}

TEST_F(mtls_test, no_identity_without_client_ca) {
  auto server = server_ctx(server_files());
  auto client = client_ctx();
  use_client_cert(client.get(), certs().client);
  tls_pair p(client.get(), server->native_handle());
  ASSERT_TRUE(p.handshake().ok());
  EXPECT_EQ(SSL_get0_peer_certificate(p.server.get()), nullptr) << "no certificate asked for";
  EXPECT_EQ(peer_identity(p.server.get()), "");
  EXPECT_EQ(peer_identity(nullptr), "");
}

// ---- session resumption -----------------------------------------------------------------------

void expect_resumption(SSL_CTX* server, SSL_CTX* client, const char* expected_identity) {
  tls_pair first(client, server);
  ASSERT_TRUE(first.handshake().ok()) << first.client_error << " / " << first.server_error;
  ASSERT_TRUE(first.client_reads());  // TLS 1.3 tickets arrive after the handshake
  session_ptr session(SSL_get1_session(first.client.get()));
  ASSERT_TRUE(session);
  ASSERT_EQ(SSL_SESSION_is_resumable(session.get()), 1);

  tls_pair second(client, server);
  ASSERT_EQ(SSL_set_session(second.client.get(), session.get()), 1);
  ASSERT_TRUE(second.handshake().ok()) << second.client_error << " / " << second.server_error;
  EXPECT_TRUE(negotiated(second.server.get()).resumed);
  EXPECT_EQ(SSL_session_reused(second.client.get()), 1);
  EXPECT_EQ(peer_identity(second.server.get()), expected_identity);
}

TEST_F(tls_context_test, sessions_resume_with_tls13_and_tls12) {
  auto server = server_ctx(server_files());
  auto tls13 = client_ctx();
  expect_resumption(server->native_handle(), tls13.get(), "");
  auto tls12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  expect_resumption(server->native_handle(), tls12.get(), "");
}

TEST_F(mtls_test, resumed_session_keeps_the_client_identity) {
  auto server = mtls_server();
  auto client = client_ctx();
  use_client_cert(client.get(), certs().client);
  expect_resumption(server->native_handle(), client.get(), "alice");
}

// ---- dialling a TLS backend -------------------------------------------------------------------

class backend_tls_test : public tls_context_test {
 protected:
  /// Handshake of make_client_context({ca, name}) against a server with `server_cert`.
  tls_pair dial(const test::cert_pair& server_cert, const std::string& ca, const std::string& name) {
    config::tls_files f;
    f.cert = server_cert.cert;
    f.key = server_cert.key;
    server_ = server_ctx(f);
    auto r = make_client_context({ca, name});
    EXPECT_EQ(r.error, "");
    client_ = r.context;
    tls_pair p(client_->native_handle(), server_->native_handle());
    EXPECT_EQ(prepare_client_ssl(p.client.get(), name), "");
    p.handshake();
    return p;
  }
  std::shared_ptr<ssl::context> server_;
  std::shared_ptr<ssl::context> client_;
};

TEST_F(backend_tls_test, names_in_the_certificate_verify) {
  for (const char* name : {"gw.test", "alt.gw.test", "127.0.0.1"}) {
    auto p = dial(certs().server, certs().ca, name);
    EXPECT_TRUE(p.ok()) << name << ": " << p.client_error;
    EXPECT_EQ(SSL_get_verify_result(p.client.get()), X509_V_OK) << name;
    // SNI carries host names only, never an IP literal (RFC 6066 section 3).
    EXPECT_EQ(negotiated(p.server.get()).server_name, std::string(name) == "127.0.0.1" ? "" : name);
  }
}

TEST_F(backend_tls_test, wrong_name_is_refused) {
  auto p = dial(certs().server, certs().ca, "wrong.test");
  EXPECT_FALSE(p.client_done);
  EXPECT_EQ(p.client_error, "certificate verify failed");
  EXPECT_EQ(SSL_get_verify_result(p.client.get()), X509_V_ERR_HOSTNAME_MISMATCH);
  auto ip = dial(certs().server, certs().ca, "127.0.0.2");
  EXPECT_EQ(SSL_get_verify_result(ip.client.get()), X509_V_ERR_IP_ADDRESS_MISMATCH);
}

TEST_F(backend_tls_test, expired_certificate_is_refused) {
  auto p = dial(certs().expired, certs().ca, "gw.test");
  EXPECT_FALSE(p.client_done);
  EXPECT_EQ(SSL_get_verify_result(p.client.get()), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_F(backend_tls_test, certificate_from_an_untrusted_ca_is_refused) {
  auto p = dial(certs().server, certs().other_ca, "gw.test");
  EXPECT_FALSE(p.client_done);
  EXPECT_EQ(SSL_get_verify_result(p.client.get()), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_F(backend_tls_test, empty_server_name_is_an_error) {
  auto r = make_client_context({certs().ca, ""});
  ASSERT_TRUE(r.context);
  ssl_ptr s(SSL_new(r.context->native_handle()));
  EXPECT_EQ(prepare_client_ssl(s.get(), ""), "tls: no server name to verify the backend certificate against");
}

}  // namespace
}  // namespace edgerelay::tunnel
