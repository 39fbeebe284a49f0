// Makes the test PKI of test_certs.hpp with the openssl CLI into a private temporary directory.
#include "tests/support/test_certs.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace edgerelay::test {
namespace {

// Our own config, so the system openssl.cnf cannot add or conflict with extensions.
constexpr const char* openssl_cnf = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:gw.test,DNS:alt.gw.test,IP:127.0.0.1
[server2_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.test
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = email:alice@example.test
[client_san_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = critical,email:bob@example.test,DNS:bob.example.test
)";

struct generator {
  std::string dir;
  std::string cnf;
  std::string error;
  int serial = 1;

  bool run(const std::string& cmd) {
    if (!error.empty()) return false;
    const std::string log = dir + "/openssl.log";
    const std::string full = cmd + " >" + log + " 2>&1";
    if (std::system(full.c_str()) == 0) return true;
    std::ifstream in(log);
    std::stringstream out;
    out << in.rdbuf();
    error = "command failed: " + cmd + "\n" + out.str();
    return false;
  }

  std::string path(const std::string& name) const { return dir + "/" + name; }

  std::string make_ca(const std::string& name, const std::string& cn) {
    run("openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -config " + cnf +
        " -extensions ca_ext -subj /CN=" + cn + " -keyout " + path(name + ".key") + " -out " + path(name + ".pem"));
    return path(name + ".pem");
  }

  cert_pair make_leaf(const std::string& name, const std::string& subject, const std::string& ca,
                      const std::string& ext, int days) {
    const std::string ca_key = ca.substr(0, ca.size() - 4) + ".key";
    cert_pair p{path(name + ".pem"), path(name + ".key")};
    run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -config " + cnf + " -subj " + subject +
        " -keyout " + p.key + " -out " + path(name + ".csr"));
    run("openssl x509 -req -in " + path(name + ".csr") + " -CA " + ca + " -CAkey " + ca_key + " -set_serial " +
        std::to_string(++serial) + " -days " + std::to_string(days) + " -extfile " + cnf + " -extensions " + ext +
        " -out " + p.cert);
    return p;
  }
};

test_certs generate() {
  test_certs t;
  char tmpl[] = "/tmp/edgerelay-certs-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    t.error = "mkdtemp failed";
    return t;
  }
  t.dir = tmpl;
  generator g{t.dir, t.dir + "/openssl.cnf", {}};
  std::ofstream(g.cnf) << openssl_cnf;
  std::ofstream(g.path("not_pem.txt")) << "this is not a certificate\n";
  t.not_pem = g.path("not_pem.txt");
  t.ca = g.make_ca("ca", "edgerelay-test-ca");
  t.server = g.make_leaf("server", "/CN=gw.test", t.ca, "server_ext", 30);
  t.server2 = g.make_leaf("server2", "/CN=other.test", t.ca, "server2_ext", 30);
  t.client = g.make_leaf("client", "/CN=alice", t.ca, "client_ext", 30);
  t.client_san_only = g.make_leaf("client_san", "/O=edgerelay-test", t.ca, "client_san_ext", 30);
  // -days -1: notAfter = now - 1 day, so the certificate is already expired.
  t.expired = g.make_leaf("expired", "/CN=gw.test", t.ca, "server_ext", -1);
  t.other_ca = g.make_ca("other_ca", "edgerelay-other-ca");
  t.foreign_client = g.make_leaf("foreign_client", "/CN=mallory", t.other_ca, "client_ext", 30);
  t.error = g.error;
  return t;
}

struct holder {
  test_certs certs = generate();
  ~holder() {
    std::error_code ignored;
    if (!certs.dir.empty()) std::filesystem::remove_all(certs.dir, ignored);
  }
};

}  // namespace

const test_certs& get_test_certs() {
  static const holder h;
  return h.certs;
}

}  // namespace edgerelay::test
