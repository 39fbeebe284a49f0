// Test PKI made at test time with the openssl CLI: CAs, server, SNI, client and expired certificates.
#pragma once

#include <string>

namespace edgerelay::test {

struct cert_pair {
  std::string cert;  ///< PEM certificate path
  std::string key;   ///< PEM private key path (unencrypted)
};

/// Paths of the generated files, all in one private temporary directory removed at exit.
/// All keys are EC P-256 (fast to make). Validity is 30 days from now unless stated.
struct test_certs {
  std::string dir;
  std::string ca;             ///< CN=edgerelay-test-ca; signs server, server2, client, expired
  cert_pair server;           ///< CN=gw.test; SAN DNS:gw.test, DNS:alt.gw.test, IP:127.0.0.1
  cert_pair server2;          ///< CN=other.test; SAN DNS:other.test (the SNI alternative)
  cert_pair client;           ///< CN=alice; SAN email:alice@example.test; clientAuth
  cert_pair client_san_only;  ///< subject O=edgerelay-test (no CN); SAN email:bob@example.test, DNS:bob.example.test
  cert_pair expired;          ///< like server, but notAfter is a day before notBefore (expired)
  std::string other_ca;       ///< CN=edgerelay-other-ca
  cert_pair foreign_client;   ///< CN=mallory, signed by other_ca
  std::string not_pem;        ///< a readable file with no PEM in it
  std::string error;          ///< non-empty when generation failed: the command and its output
};

/// Generates the files on first call (once per process) and returns them. Not thread-safe on the
/// first call; call it from the test thread.
const test_certs& get_test_certs();

}  // namespace edgerelay::test
