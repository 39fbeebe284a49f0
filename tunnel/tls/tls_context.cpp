// Server and client TLS contexts over OpenSSL 3, with the cipher, SNI, ALPN and mTLS policy.
#include "tunnel/tls/tls_context.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace edgerelay::tunnel {
namespace {

// TLS 1.2: ECDHE only (forward secrecy) and AEAD only (GCM, ChaCha20-Poly1305); ECDSA first as
// it is cheaper for the server. TLS 1.3 suites are all AEAD; listed so a system-wide
// openssl.cnf cannot widen them.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* tls13_suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// Resumed sessions must carry the context they were made in; OpenSSL refuses to resume a
// verified-peer session without one.
constexpr unsigned char session_id_context[] = {'e', 'd', 'g', 'e', 'r', 'e', 'l', 'a', 'y'};

struct x509_free_fn {
  void operator()(X509* p) const noexcept { X509_free(p); }
};
struct pkey_free_fn {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct chain_free_fn {
  void operator()(STACK_OF(X509) * p) const noexcept { sk_X509_pop_free(p, X509_free); }
};
struct bio_free_fn {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct ctx_free_fn {
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
using x509_ptr = std::unique_ptr<X509, x509_free_fn>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free_fn>;
using chain_ptr = std::unique_ptr<STACK_OF(X509), chain_free_fn>;
using bio_ptr = std::unique_ptr<BIO, bio_free_fn>;
using ctx_ptr = std::unique_ptr<SSL_CTX, ctx_free_fn>;

/// One extra certificate chain, selected by SNI.
struct sni_chain {
  x509_ptr cert;
  pkey_ptr key;
  chain_ptr chain;  ///< intermediates, may be null
};

/// Extra state of a server SSL_CTX, owned by the SSL_CTX itself (ex_data) because SSL objects
/// keep their SSL_CTX alive after the asio::ssl::context that made it is gone.
struct server_extra {
  std::vector<sni_chain> chains;
};

void free_server_extra(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<server_extra*>(ptr);
}

int server_extra_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_server_extra);
  return index;
}

/// OpenSSL's oldest queued error (the root cause) as "reason (library)"; clears the queue.
std::string openssl_reason() {
  const unsigned long first = ERR_peek_error();
  ERR_clear_error();
  if (first == 0) return "unknown OpenSSL error";
  const char* reason = ERR_reason_error_string(first);
  const char* lib = ERR_lib_error_string(first);
  std::string out = reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(first));
  if (lib != nullptr) out += std::string(" (") + lib + ")";
  return out;
}

/// Empty when `path` can be opened for reading, else "<path>: cannot read <what>: <errno text>".
std::string check_readable(const std::string& path, const char* what) {
  if (path.empty()) return std::string("tls: no ") + what + " file given";
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return path + ": cannot read " + what + ": " + std::strerror(errno);
  std::fclose(f);
  return {};
}

// An encrypted key must fail to load, never prompt on the terminal of a daemon.
int no_password(char*, int, int, void*) {
  return 0;
}

/// Loads `cert` (chain) and `key` into `ctx`, checking that they belong together.
std::string load_chain(SSL_CTX* ctx, const std::string& cert, const std::string& key) {
  if (auto e = check_readable(cert, "certificate"); !e.empty()) return e;
  if (auto e = check_readable(key, "private key"); !e.empty()) return e;
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    return cert + ": cannot load certificate chain: " + openssl_reason();
  }
  const bio_ptr bio(BIO_new_file(key.c_str(), "rb"));
  pkey_ptr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr) : nullptr);
  if (!pkey) return key + ": cannot load private key: " + openssl_reason();
  // Checked here rather than left to SSL_CTX_use_PrivateKey, which silently files a key of
  // another type (EC key, RSA certificate) into a different slot.
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pkey.get()) != 1) {
    ERR_clear_error();
    return key + ": key does not match certificate " + cert;
  }
  if (SSL_CTX_use_PrivateKey(ctx, pkey.get()) != 1) return key + ": cannot use private key: " + openssl_reason();
  return {};
}

/// Loads an extra SNI chain through a scratch context, so it gets the same checks as the default.
std::string load_sni_chain(const config::tls_cert& entry, sni_chain& out) {
  const ctx_ptr scratch(SSL_CTX_new(TLS_server_method()));
  if (!scratch) return "tls: cannot create a context: " + openssl_reason();
  if (auto e = load_chain(scratch.get(), entry.cert, entry.key); !e.empty()) return e;
  X509* cert = SSL_CTX_get0_certificate(scratch.get());
  EVP_PKEY* key = SSL_CTX_get0_privatekey(scratch.get());
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(scratch.get(), &chain);
  if (cert == nullptr || key == nullptr) return entry.cert + ": no certificate loaded";
  X509_up_ref(cert);
  out.cert.reset(cert);
  EVP_PKEY_up_ref(key);
  out.key.reset(key);
  if (chain != nullptr) out.chain.reset(X509_chain_up_ref(chain));
  return {};
}

bool matches_host(X509* cert, const char* name) {
  return cert != nullptr && X509_check_host(cert, name, 0, 0, nullptr) == 1;
}

// SNI: keep the default chain when it covers the name, else the first extra chain that does,
// else the default (clients without SNI or with unknown names still get a certificate).
int select_by_server_name(SSL* ssl, int* alert, void* arg) {
  const auto* extra = static_cast<const server_extra*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (extra == nullptr || name == nullptr || matches_host(SSL_get_certificate(ssl), name)) {
    return SSL_TLSEXT_ERR_OK;
  }
  for (const auto& c : extra->chains) {
    if (!matches_host(c.cert.get(), name)) continue;
    // Clear first: a default of another key type would otherwise stay selectable beside it.
    SSL_certs_clear(ssl);
    if (SSL_use_cert_and_key(ssl, c.cert.get(), c.key.get(), c.chain.get(), 1) != 1) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_OK;
}

int select_http11(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in, unsigned int in_len,
                  void*) {
  static constexpr unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  unsigned char selected_len = 0;
  if (SSL_select_next_proto(&selected, &selected_len, http11, sizeof http11, in, in_len) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    *out_len = selected_len;
    return SSL_TLSEXT_ERR_OK;
  }
  // No common protocol: go on without ALPN rather than fail the handshake.
  return SSL_TLSEXT_ERR_NOACK;
}

/// Version range, ciphers and options shared by server and client contexts.
std::string apply_common_policy(SSL_CTX* ctx, int min_version) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return "tls: cannot set the protocol versions: " + openssl_reason();
  }
  if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1)
    return "tls: cannot set the TLS 1.2 ciphers: " + openssl_reason();
  if (SSL_CTX_set_ciphersuites(ctx, tls13_suites) != 1)
    return "tls: cannot set the TLS 1.3 suites: " + openssl_reason();
  return {};
}

std::shared_ptr<ssl::context> new_context(ssl::context::method m, std::string& error) {
  try {
    return std::make_shared<ssl::context>(m);
  } catch (const std::exception& e) {  // SSL_CTX_new fails only when out of memory
    error = std::string("tls: cannot create a context: ") + e.what();
    return nullptr;
  }
}

tls_result failed(std::string error) {
  return tls_result{nullptr, std::move(error)};
}

bool printable(const std::string& s) {
  if (s.empty()) return false;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

std::string asn1_to_utf8(const ASN1_STRING* s) {
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) {
    ERR_clear_error();
    return {};
  }
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

tls_result make_server_context(const config::tls_files& files, bool alpn_http) {
  int min_version = TLS1_2_VERSION;
  if (files.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else if (files.min_version != "1.2" && !files.min_version.empty()) {
    return failed("tls: min_version '" + files.min_version + "' is not supported (expected \"1.2\" or \"1.3\")");
  }
  if (files.cert.empty() && files.certs.empty()) return failed("tls: no certificate given (cert or certs)");

  std::string error;
  auto context = new_context(ssl::context::tls_server, error);
  if (!context) return failed(std::move(error));
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  if (auto e = apply_common_policy(ctx, min_version); !e.empty()) return failed(std::move(e));
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_default_passwd_cb(ctx, no_password);

  // Default chain: cert/key, else the first certs entry.
  std::size_t first_extra = 0;
  if (!files.cert.empty() || !files.key.empty()) {
    if (auto e = load_chain(ctx, files.cert, files.key); !e.empty()) return failed(std::move(e));
  } else {
    if (auto e = load_chain(ctx, files.certs.front().cert, files.certs.front().key); !e.empty()) {
      return failed(std::move(e));
    }
    first_extra = 1;
  }
  auto extra = std::make_unique<server_extra>();
  for (std::size_t i = first_extra; i < files.certs.size(); ++i) {
    sni_chain c;
    if (auto e = load_sni_chain(files.certs[i], c); !e.empty()) return failed(std::move(e));
    extra->chains.push_back(std::move(c));
  }
  if (!extra->chains.empty()) {
    server_extra* raw = extra.get();
    if (SSL_CTX_set_ex_data(ctx, server_extra_index(), raw) != 1) return failed("tls: " + openssl_reason());
    extra.release();  // now owned by the SSL_CTX (free_server_extra)
    // The OpenSSL macro casts in C style; this is the same call without it.
    SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, reinterpret_cast<void (*)()>(select_by_server_name));
    SSL_CTX_set_tlsext_servername_arg(ctx, raw);
  }

  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  if (SSL_CTX_set_session_id_context(ctx, session_id_context, sizeof session_id_context) != 1) {
    return failed("tls: cannot set the session id context: " + openssl_reason());
  }
  if (alpn_http) SSL_CTX_set_alpn_select_cb(ctx, select_http11, nullptr);

  if (!files.client_ca.empty()) {
    if (auto e = check_readable(files.client_ca, "client CA"); !e.empty()) return failed(std::move(e));
    if (SSL_CTX_load_verify_locations(ctx, files.client_ca.c_str(), nullptr) != 1) {
      return failed(files.client_ca + ": cannot load client CA certificates: " + openssl_reason());
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.client_ca.c_str());
    if (names == nullptr) return failed(files.client_ca + ": no CA certificate found: " + openssl_reason());
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_verify_depth(ctx, 8);
  }
  ERR_clear_error();
  return tls_result{std::move(context), {}};
}

tls_result make_client_context(const config::backend_tls& t) {
  std::string error;
  auto context = new_context(ssl::context::tls_client, error);
  if (!context) return failed(std::move(error));
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  if (auto e = apply_common_policy(ctx, TLS1_2_VERSION); !e.empty()) return failed(std::move(e));
  if (t.ca.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return failed("tls: cannot load the system CA store: " + openssl_reason());
    }
  } else {
    if (auto e = check_readable(t.ca, "CA"); !e.empty()) return failed(std::move(e));
    if (SSL_CTX_load_verify_locations(ctx, t.ca.c_str(), nullptr) != 1) {
      return failed(t.ca + ": cannot load CA certificates: " + openssl_reason());
    }
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_verify_depth(ctx, 8);
  ERR_clear_error();
  return tls_result{std::move(context), {}};
}

std::string prepare_client_ssl(SSL* ssl, std::string_view server_name) {
  if (ssl == nullptr) return "tls: no SSL object";
  if (server_name.empty()) return "tls: no server name to verify the backend certificate against";
  const std::string name(server_name);
  if (name.find('\0') != std::string::npos) return "tls: server name holds a NUL byte";
  ERR_clear_error();
  // An IP literal is checked against IP address SANs and is never sent as SNI.
  if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1) return {};
  ERR_clear_error();
  // SSL_set_tlsext_host_name without the macro's C-style cast; OpenSSL copies the name.
  if (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str())) != 1) {
    return "tls: cannot set SNI '" + name + "': " + openssl_reason();
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, name.c_str()) != 1) return "tls: cannot set host check '" + name + "': " + openssl_reason();
  return {};
}

std::string peer_identity(const SSL* ssl) {
  if (ssl == nullptr) return {};
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};

  const X509_NAME* subject = X509_get_subject_name(cert);
  int last_cn = -1;
  for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) last_cn = i;
  std::string identity;
  if (last_cn >= 0) {
    identity = asn1_to_utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last_cn)));
  } else if (auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    std::string dns;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && identity.empty(); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_EMAIL) identity = asn1_to_utf8(gn->d.rfc822Name);
      if (gn->type == GEN_DNS && dns.empty()) dns = asn1_to_utf8(gn->d.dNSName);
    }
    GENERAL_NAMES_free(sans);
    if (identity.empty()) identity = std::move(dns);
  }
  ERR_clear_error();
  return printable(identity) ? identity : std::string();
}

tls_info negotiated(const SSL* ssl) {
  tls_info info;
  if (ssl == nullptr || SSL_is_init_finished(ssl) != 1) return info;
  info.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) info.cipher = SSL_CIPHER_get_name(c);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn != nullptr) info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info.server_name = sni;
  info.resumed = SSL_session_reused(ssl) == 1;
  return info;
}

std::string tls_failure_reason(const SSL* ssl, const boost::system::error_code& ec) {
  if (!ec) return {};
  if (ec == ssl::error::stream_truncated || ec == boost::asio::error::eof) {
    return "peer closed the connection during the handshake";
  }
  if (ec == boost::asio::error::operation_aborted) return "handshake cancelled";
  if (ec.category() != boost::asio::error::get_ssl_category()) return ec.message();
  const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
  std::string out = reason != nullptr ? reason : ec.message();
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) out += std::string(": ") + X509_verify_cert_error_string(verify);
  }
  return out;
}

}  // namespace edgerelay::tunnel
