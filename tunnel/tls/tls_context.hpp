// Builds the OpenSSL contexts for TLS listeners and TLS backends, and reads TLS facts for logs.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include "config/model.hpp"

namespace edgerelay::tunnel {

namespace ssl = boost::asio::ssl;

/// A built context, or why it could not be built. Exactly one of the two is set.
struct tls_result {
  std::shared_ptr<ssl::context> context;
  /// Names the file and OpenSSL's reason, e.g. "gw.key: key does not match certificate gw.pem".
  std::string error;
};

/// Builds the server context of a listener from `files`, validating everything now (files
/// readable, each key matches its certificate, client CA loads) so that a reload with a bad file
/// can keep the old context.
///
/// Policy: TLS 1.2 and 1.3 only (1.3 only when min_version is "1.3"); TLS 1.2 suites are ECDHE
/// with AES-GCM or CHACHA20-POLY1305 (forward secrecy and AEAD), TLS 1.3 suites are its three
/// AEAD defaults; no compression, no renegotiation, server cipher preference; session resumption
/// by a server-side cache and tickets (keys are per context, so a reload ends resumption).
/// - `cert`/`key` is the default chain. Each `certs` entry is an extra chain chosen when the
///   client's SNI name matches it (X509_check_host) and not the default; with no `cert`, the
///   first `certs` entry is the default.
/// - `client_ca` set: clients must present a certificate that verifies against it, or the
///   handshake fails; the CA's names are sent as the acceptable-CA list.
/// - `alpn_http`: ALPN selects "http/1.1" when the client offers it; other offers get no ALPN
///   (never a fatal alert).
/// Never throws on bad files; call on the control thread (it reads files).
tls_result make_server_context(const config::tls_files& files, bool alpn_http);

/// Builds the context used to dial a TLS backend: TLS 1.2+, the same cipher policy, peer
/// verification against `t.ca` (the system default store when empty). The host name check is
/// per connection: apply prepare_client_ssl() to each new stream. Never throws on bad files.
tls_result make_client_context(const config::backend_tls& t);

/// Sets SNI (unless `server_name` is an IP literal, RFC 6066 3) and the certificate name check
/// (DNS name or IP address SAN) on a client SSL before its handshake. `server_name` is the
/// backend's tls.server_name, or its host when that is empty. Returns an error text, empty on
/// success.
std::string prepare_client_ssl(SSL* ssl, std::string_view server_name);

/// The identity of a verified client certificate, used as the session's user for rules and the
/// access log. Rule: the subject's last (most specific) commonName; when the subject has none,
/// the first SAN of type email, else the first SAN of type DNS. Empty when there is no peer
/// certificate, it did not verify, or the chosen text is empty or holds control characters (so
/// it can never forge a log line or match a user by accident).
std::string peer_identity(const SSL* ssl);

/// What a handshake negotiated, for the access log.
struct tls_info {
  std::string version;      ///< "TLSv1.3", ...; empty before a handshake
  std::string cipher;       ///< OpenSSL name, e.g. "TLS_AES_256_GCM_SHA384"
  std::string alpn;         ///< selected protocol, empty when none
  std::string server_name;  ///< SNI the client sent, empty when none
  bool resumed = false;     ///< the session was resumed (abbreviated handshake)
};

/// Reads the negotiated facts of `ssl` (nullptr gives an empty tls_info).
tls_info negotiated(const SSL* ssl);

/// A one-line reason for a failed handshake, for logs: OpenSSL's reason from `ec` and, when
/// certificate verification failed, the verification error of `ssl` (may be nullptr). Examples:
/// "unsupported protocol", "certificate verify failed: certificate has expired",
/// "peer closed the connection during the handshake".
std::string tls_failure_reason(const SSL* ssl, const boost::system::error_code& ec);

}  // namespace edgerelay::tunnel
