#!/usr/bin/env python3
"""TLS termination with real clients against the real edgerelay binary (docs/config.md, tls):
- curl --proxy https://... (an HTTPS proxy): CONNECT with -p to an http:// URL, CONNECT to an
  https:// origin, and a plain forward GET, each downloading a 1 MiB file intact;
- SOCKS5 over TLS: a Python ssl socket speaking SOCKS5 by hand to an echo server, and
  curl --socks5-hostname through ncat as a local plain-to-TLS forwarder;
- openssl s_client: -tls1_3 negotiated, -tls1 and -tls1_1 refused by the server (client at
  security level 0 so that the refusal is the server's), each refusal logged as tls_failed with a
  tls_error and a warning on stderr naming the client;
- mTLS: the client certificate's CN (alice) is the access log's user; no certificate is refused;
- `required: true` closes plaintext clients with no reply and logs tls_required;
- access-log lines of TLS sessions carry "tls":"TLSv1.3" (and "sni" when the client sent one);
- a backend with `tls` is dialled over TLS (curl through SOCKS5 to an HTTPS origin); a certificate
  that does not match server_name gives SOCKS5 reply 1 and "result":"backend_tls_failed";
- a key file without a key refuses the start and fails `edgerelay check`, naming the file.
The PKI (a CA, a server certificate with SAN DNS:gw.test and IP:127.0.0.1, a client certificate)
is made with the openssl CLI in the test's temporary folder."""

import functools
import os
import socket
import ssl
import subprocess
import time

import gateway as gw
from gateway import check

# Fields a TLS session's access-log line may add to the docs/config.md ones.
TLS_FIELDS = {"tls", "sni", "tls_error"}

OPENSSL_CNF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:gw.test,IP:127.0.0.1
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


def openssl(args, timeout=30, input_text=""):
    return gw.run(["openssl"] + args, timeout=timeout, input_text=input_text)


def make_pki(d):
    """ca.pem, server.pem/.key (CN gw.test), client.pem/.key (CN alice) in d; returns their paths."""
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF)
    p = {n: os.path.join(d, n) for n in ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")}
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-config", cnf]
    steps = [["req", "-x509", "-new"] + newkey + ["-days", "2", "-extensions", "ca_ext", "-subj", "/CN=clients-test-ca",
                                                "-keyout", p["ca.key"], "-out", p["ca.pem"]]]
    for name, cn, ext, serial in (("server", "gw.test", "server_ext", "2"), ("client", "alice", "client_ext", "3")):
        csr = os.path.join(d, name + ".csr")
        steps.append(["req", "-new"] + newkey + ["-subj", "/CN=" + cn, "-keyout", p[name + ".key"], "-out", csr])
        steps.append(["x509", "-req", "-in", csr, "-CA", p["ca.pem"], "-CAkey", p["ca.key"], "-set_serial", serial,
                      "-days", "2", "-extfile", cnf, "-extensions", ext, "-out", p[name + ".pem"]])
    for args in steps:
        r = openssl(args)
        check(r.returncode == 0, "openssl %s failed: %s" % (" ".join(args), r.stderr))
    return p


def config(https_port, key="server.key"):
    # Relative certificate paths: resolved against the config file's folder (the workdir).
    tls = "tls: {cert: server.pem, key: %s%%s}" % key
    backend = "  - {name: %s, host: 127.0.0.1, portbase: %d, tls: {ca: ca.pem, server_name: %s}}\n"
    return (
        "listeners:\n"
        '  - {name: test, bind: "127.0.0.1:0", protocols: [http, socks5, socks4], %s}\n'
        '  - {name: mtls, bind: "127.0.0.1:0", protocols: [http, socks5], %s}\n'
        '  - {name: strict, bind: "127.0.0.1:0", protocols: [socks5, http], %s}\n'
        "backends:\n%s%s"
        "rules:\n"
        '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8", "localhost", '
        '"backend:websecure", "backend:misnamed"]}\n'
        "limits: {handshake_timeout: 3s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 3s}\n"
        "log: {level: info, access: json}\n"
        % (tls % "", tls % ", client_ca: ca.pem", tls % ", required: true",
           backend % ("websecure", https_port - 1, "gw.test"), backend % ("misnamed", https_port - 1, "wrong.test")))


class Checker:
    """Waits for the one access-log line each client action leaves and checks its common fields."""

    def __init__(self, g):
        self.g = g
        self.before = 0

    def mark(self):
        self.before = len(self.g.stdout_lines())

    def record(self, what, listener="test", result="ok", tls="TLSv1.3"):
        """The new line. result None: any result. tls: the expected "tls" field; None: not checked (a
        failed handshake); False: a plaintext session (no "tls", or empty)."""
        self.g.wait_access_records(self.before + 1, timeout=10)
        time.sleep(0.3)  # a stray second line for the same session would show up by now
        new = self.g.access_records()[self.before:]
        check(len(new) == 1, "%s: expected exactly one access-log line, got %d: %r" % (what, len(new), new))
        rec = new[0]
        gw.check_access_record({k: v for k, v in rec.items() if k not in TLS_FIELDS})
        for k in TLS_FIELDS & set(rec):
            check(isinstance(rec[k], str), "%s: access-log field %s is not a string: %r" % (what, k, rec))
        check(rec["listener"] == listener, "%s: listener %r, expected %r" % (what, rec["listener"], listener))
        if result is not None:
            check(rec["result"] == result, "%s: result %r, expected %r: %r" % (what, rec["result"], result, rec))
        if tls is False:
            check(rec.get("tls", "") == "", "%s: plaintext session logged tls %r" % (what, rec))
        elif tls is not None:
            check(rec.get("tls") == tls, "%s: access-log tls %r, expected %r: %r" % (what, rec.get("tls"), tls, rec))
        gw.log("%s:" % what, rec)
        return rec


def download_checks(what, r, out, server):
    check(r.returncode == 0, "%s: curl exited %d: %s" % (what, r.returncode, r.stderr))
    check(r.stdout.strip() == "200", "%s: HTTP status %r" % (what, r.stdout))
    check(gw.sha256_file(out) == server.sha256, "%s: the download differs from the served file" % what)
    os.unlink(out)


class HTTPSServer(gw.ServerThread):
    """The FileServer's folder served over HTTPS with the server certificate, on loopback port 0."""

    def __init__(self, root, pki):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
        handler = functools.partial(gw._QuietHandler, directory=root)
        httpd = gw._HTTPServer(("127.0.0.1", 0), handler)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        super().__init__(httpd)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_listening(port):
    """True when something listens on 127.0.0.1:port (read from /proc, so no probe connection)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A" for line in list(f)[1:])


def tls_socket(g, pki, listener, cert=False):
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    if cert:
        ctx.load_cert_chain(pki["client.pem"], pki["client.key"])
    raw = socket.create_connection(g.address(listener), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="gw.test")


def socks5_echo_over_tls(g, pki, echo, listener, cert=False):
    """SOCKS5 by hand over a Python TLS socket; 1 MiB through the echo server in 64 KiB steps."""
    s = tls_socket(g, pki, listener, cert)
    try:
        version = s.version()
        gw.socks5_handshake(s, "127.0.0.1", echo.port)
        for i in range(16):
            chunk = bytes([(i * 7 + j) & 0xFF for j in range(256)]) * 256
            s.sendall(chunk)
            check(gw.recv_exact(s, len(chunk)) == chunk, "SOCKS5 over TLS: echo %d came back altered" % i)
    finally:
        s.close()
    return version


def s_client(g, pki, listener, version_flag, legacy=False, cert=False):
    args = ["s_client", "-connect", "127.0.0.1:%d" % g.port(listener), "-servername", "gw.test",
            "-CAfile", pki["ca.pem"], "-verify_return_error", version_flag]
    if legacy:
        args += ["-cipher", "DEFAULT@SECLEVEL=0"]
    if cert:
        args += ["-cert", pki["client.pem"], "-key", pki["client.key"]]
    gw.log("running openssl", " ".join(args))
    return openssl(args, timeout=20)


def test(binary, workdir):
    pki = make_pki(workdir)
    www = os.path.join(workdir, "www")
    server = gw.FileServer(www)
    https = HTTPSServer(www, pki)
    # The same files from a second HTTPS origin for the backends with tls (a CONNECT to a backend's
    # host and port is a session to that backend, so it must not be the origin of case 3).
    origin = HTTPSServer(www, pki)
    echo = gw.EchoServer()
    # A key file without a key: edgerelay refuses to start and names the file.
    with open(os.path.join(workdir, "bad.key"), "w") as f:
        f.write("not a key\n")
    bad = gw.Gateway(binary, config(origin.port, key="bad.key"), workdir, name="bad.yaml")
    try:
        bad.start(listeners=("test", "mtls", "strict"), timeout=10)
        raise gw.TestFailure("edgerelay started with a key file that holds no key")
    except gw.TestFailure as e:
        if "did not report listening" not in str(e):
            raise
    finally:
        bad.kill()
    check(bad.proc.returncode not in (None, 0), "edgerelay with a bad key file exited %r" % bad.proc.returncode)
    check("bad.key" in bad.stderr_text(), "the start-up error does not name bad.key:\n%s" % bad.stderr_text())
    gw.log("ok: a bad key file refuses the start:", bad.stderr_text().splitlines()[:3])
    r = gw.run([binary, "check", "--config", bad.config_path], timeout=30)
    check(r.returncode == 1 and "bad.key" in r.stdout + r.stderr,
          "edgerelay check with a bad key file: exit %d, output:\n%s%s" % (r.returncode, r.stdout, r.stderr))

    g = gw.Gateway(binary, config(origin.port), workdir)
    forwarder = None
    try:
        g.start(listeners=("test", "mtls", "strict"))
        c = Checker(g)
        out = os.path.join(workdir, "out.bin")
        proxy = "https://127.0.0.1:%d" % g.port("test")
        proxy_tls = ["--proxy", proxy, "--proxy-cacert", pki["ca.pem"]]
        fetch = ["-o", out, "-w", "%{http_code}"]

        # 1. HTTPS proxy, CONNECT (-p) to an http:// URL.
        c.mark()
        r = gw.curl(proxy_tls + ["-p"] + fetch + [server.url()])
        download_checks("curl -p via https proxy", r, out, server)
        rec = c.record("curl -p via https proxy")
        check(rec["protocol"] == "http" and rec["target"] == "127.0.0.1:%d" % server.port,
              "curl -p: protocol/target %r" % rec)
        check(rec["bytes_down"] >= server.size, "curl -p: bytes_down %d" % rec["bytes_down"])
        check(rec["user"] == "", "curl -p: user %r without a client certificate" % rec["user"])

        # 2. The proxy named gw.test (resolved to 127.0.0.1 by curl): the SNI is logged.
        c.mark()
        r = gw.curl(["--proxy", "https://gw.test:%d" % g.port("test"), "--proxy-cacert", pki["ca.pem"],
                     "--resolve", "gw.test:%d:127.0.0.1" % g.port("test"), "-p"] + fetch + [server.url()])
        download_checks("curl via https://gw.test proxy", r, out, server)
        rec = c.record("curl via https://gw.test proxy")
        check(rec.get("sni") == "gw.test", "curl via https://gw.test: sni %r" % rec.get("sni"))

        # 3. HTTPS proxy, CONNECT to an https:// origin (TLS inside TLS).
        c.mark()
        r = gw.curl(proxy_tls + ["--cacert", pki["ca.pem"]] + fetch
                    + ["https://127.0.0.1:%d/%s" % (https.port, server.name)])
        download_checks("curl https:// via https proxy", r, out, server)
        rec = c.record("curl https:// via https proxy")
        check(rec["target"] == "127.0.0.1:%d" % https.port, "curl https://: target %r" % rec["target"])

        # 4. HTTPS proxy, plain forward GET (absolute-form) of an http:// URL.
        c.mark()
        r = gw.curl(proxy_tls + fetch + [server.url()])
        download_checks("curl forward GET via https proxy", r, out, server)
        rec = c.record("curl forward GET via https proxy")
        check(rec["bytes_down"] >= server.size, "forward GET: bytes_down %d" % rec["bytes_down"])

        # 5. mTLS: the client certificate's CN is the user (curl --proxy-cert).
        c.mark()
        r = gw.curl(["--proxy", "https://127.0.0.1:%d" % g.port("mtls"), "--proxy-cacert", pki["ca.pem"],
                     "--proxy-cert", pki["client.pem"], "--proxy-key", pki["client.key"], "-p"] + fetch
                    + [server.url()])
        download_checks("curl with a proxy client certificate", r, out, server)
        rec = c.record("curl with a proxy client certificate", listener="mtls")
        check(rec["user"] == "alice", "mTLS: user %r, expected alice" % rec["user"])

        # 6. mTLS without a certificate: refused, logged as tls_failed.
        c.mark()
        r = gw.curl(["--proxy", "https://127.0.0.1:%d" % g.port("mtls"), "--proxy-cacert", pki["ca.pem"], "-p"]
                    + fetch + [server.url()])
        check(r.returncode != 0, "curl without a client certificate got through an mTLS listener: %r" % r.stdout)
        check(not os.path.exists(out), "curl without a client certificate wrote a file")
        rec = c.record("mTLS without a certificate", listener="mtls", result="tls_failed", tls=None)
        check(rec.get("tls_error", "") != "", "mTLS refusal without tls_error: %r" % rec)

        # 7. SOCKS5 by hand over a Python TLS socket, anonymous and with the client certificate.
        c.mark()
        version = socks5_echo_over_tls(g, pki, echo, "test")
        check(version == "TLSv1.3", "Python ssl negotiated %r" % version)
        rec = c.record("SOCKS5 over Python ssl")
        check(rec["protocol"] == "socks5" and rec["sni"] == "gw.test", "SOCKS5 over TLS: %r" % rec)
        check(rec["bytes_up"] == 16 * 65536 and rec["bytes_down"] == 16 * 65536, "SOCKS5 over TLS bytes: %r" % rec)
        c.mark()
        socks5_echo_over_tls(g, pki, echo, "mtls", cert=True)
        rec = c.record("SOCKS5 over Python ssl with alice's certificate", listener="mtls")
        check(rec["user"] == "alice", "SOCKS5 over mTLS: user %r" % rec["user"])

        # 8. curl --socks5-hostname through ncat as a local plain -> TLS forwarder.
        port = free_port()
        inner = "ncat --ssl --ssl-verify --ssl-trustfile %s --ssl-servername gw.test 127.0.0.1 %d" % (
            pki["ca.pem"], g.port("test"))
        forwarder = subprocess.Popen(["ncat", "-l", "127.0.0.1", str(port), "--keep-open", "--sh-exec", inner],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=gw.clean_env(), preexec_fn=gw.die_with_parent)
        check(gw.wait_until(lambda: tcp_listening(port), 10), "ncat did not listen on port %d" % port)
        c.mark()
        r = gw.curl(["--socks5-hostname", "127.0.0.1:%d" % port] + fetch + [server.url("localhost")])
        download_checks("curl --socks5-hostname through ncat --ssl", r, out, server)
        rec = c.record("curl --socks5-hostname through ncat --ssl")
        check(rec["protocol"] == "socks5" and rec["target"] == "localhost:%d" % server.port,
              "socks5-hostname over TLS: %r" % rec)
        check(rec.get("sni") == "gw.test", "ncat --ssl-servername gw.test: sni %r" % rec.get("sni"))

        # 9. openssl s_client: TLS 1.3 negotiated; TLS 1.0 and 1.1 refused by the server.
        c.mark()
        r = s_client(g, pki, "test", "-tls1_3")
        text = r.stdout + r.stderr
        check("New, TLSv1.3" in text and "Verify return code: 0 (ok)" in text,
              "s_client -tls1_3 did not negotiate TLS 1.3 with a verified certificate:\n%s" % text)
        rec = c.record("s_client -tls1_3 (no request)", result=None)
        check(rec.get("sni") == "gw.test", "s_client -servername gw.test: sni %r" % rec.get("sni"))
        for flag, name in (("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")):
            c.mark()
            err_from = len(g.stderr_lines())
            r = s_client(g, pki, "test", flag, legacy=True)
            text = r.stdout + r.stderr
            check(r.returncode != 0, "s_client %s succeeded:\n%s" % (flag, text))
            check("New, %s" % name not in text, "s_client %s negotiated %s:\n%s" % (flag, name, text))
            check("alert protocol version" in text,
                  "s_client %s: expected the server's protocol_version alert (the client was at security "
                  "level 0, so the refusal must be the server's):\n%s" % (flag, text))
            rec = c.record("s_client %s" % flag, result="tls_failed", tls=None)
            check(rec.get("tls_error", "") != "", "s_client %s: no tls_error in %r" % (flag, rec))
            if flag == "-tls1":  # the warning is rate-limited: the first one must show
                line = g.wait_stderr(r"(?i)warn.*%s" % rec["client"].replace(".", r"\."), timeout=5, start=err_from)
                check(line is not None and "test" in line,
                      "no warning naming the listener and client %s on stderr:\n%s" % (rec["client"],
                                                                                       g.stderr_text()))

        # 9b. A burst of failed handshakes: one access-log line each, but the stderr warning is
        # rate-limited (at most about one a second).
        c.mark()
        err_from = len(g.stderr_lines())
        burst = 20
        started = time.monotonic()
        for _ in range(burst):
            with socket.create_connection(g.address("test"), timeout=10) as s:
                s.sendall(b"\x16\x03\x01\x00\x05hello")  # a handshake record that is no ClientHello
                while s.recv(4096):  # the alert, then the end (bounded by the socket timeout)
                    pass
        elapsed = time.monotonic() - started
        recs = g.wait_access_records(c.before + burst, timeout=10)[c.before:]
        check(len(recs) == burst and all(r["result"] == "tls_failed" for r in recs),
              "a burst of %d bad handshakes logged %r" % (burst, [r["result"] for r in recs]))
        time.sleep(0.3)  # warnings of the burst, if any, are written by now
        warnings = [ln for ln in g.stderr_lines()[err_from:] if " warn " in ln and "handshake" in ln]
        check(len(warnings) <= 2 + int(elapsed), "%d handshake warnings for %d failures in %.1fs (not rate-limited):\n%s"
              % (len(warnings), burst, elapsed, "\n".join(warnings)))
        gw.log("ok: %d failed handshakes in %.2fs gave %d warning line(s)" % (burst, elapsed, len(warnings)))

        # 10. required: true closes plaintext clients with no reply.
        c.mark()
        with socket.create_connection(g.address("strict"), timeout=10) as s:
            s.sendall(b"\x05\x01\x00")
            got = s.recv(64)
            check(got == b"", "plaintext SOCKS5 on a required-TLS listener got a reply: %r" % got)
        c.record("plaintext on strict", listener="strict", result="tls_required", tls=False)
        c.mark()
        socks5_echo_over_tls(g, pki, echo, "strict")
        c.record("SOCKS5 over TLS on strict", listener="strict")

        # 11. The same port serves plaintext when TLS is not required.
        c.mark()
        r = gw.curl(["--socks5", "127.0.0.1:%d" % g.port("test")] + fetch + [server.url()])
        download_checks("plain curl --socks5 on the TLS listener", r, out, server)
        c.record("plain curl --socks5 on the TLS listener", tls=False)

        # 12. A backend with tls: curl speaks plain HTTP through SOCKS5, the gateway dials the HTTPS
        # origin over TLS (verified against ca.pem and server_name gw.test).
        c.mark()
        r = gw.curl(["--socks5-hostname", "127.0.0.1:%d" % g.port("test")] + fetch
                    + ["http://websecure:%d/%s" % (origin.port, server.name)])
        download_checks("curl to a TLS backend", r, out, server)
        rec = c.record("curl to a TLS backend", tls=False)
        check(rec["dialled"] == "127.0.0.1:%d" % origin.port, "TLS backend: dialled %r" % rec["dialled"])
        c.mark()
        r = gw.curl(["--socks5-hostname", "127.0.0.1:%d" % g.port("test")] + fetch
                    + ["http://misnamed:%d/%s" % (origin.port, server.name)])
        check(r.returncode != 0, "curl to a backend whose certificate does not match server_name succeeded")
        check("(1)" in r.stderr, "curl did not report SOCKS5 reply 1 (general failure): %r" % r.stderr)
        rec = c.record("curl to a misnamed TLS backend", result="backend_tls_failed", tls=False)
        check("hostname mismatch" in rec.get("tls_error", ""), "misnamed backend: tls_error %r" % rec.get("tls_error"))

        check(g.alive(), "edgerelay died during the test")
        g.stop_ok()
    except BaseException:
        g.dump()
        if forwarder is not None and forwarder.poll() is not None:
            gw.log("ncat stderr:", forwarder.stderr.read().decode(errors="replace"))
        raise
    finally:
        g.kill()
        if forwarder is not None:
            forwarder.kill()
            forwarder.wait(10)
        echo.close()
        https.close()
        origin.close()
        server.close()


if __name__ == "__main__":
    gw.main(test)
