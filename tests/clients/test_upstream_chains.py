#!/usr/bin/env python3
"""Rules with `via` through real upstream proxies from Debian (docs/upstreams.md):

- Squid with CONNECT and Basic auth (and a wrong password: the failing hop in the access log);
- the same Squid behind stunnel, as an https:// upstream verified against its CA;
- Dante (danted) with SOCKS5 username authentication;
- microsocks, asked by name (resolve: upstream);
- a chain edgerelay -> Dante -> Squid -> target, with 64 MiB each way checked by SHA-256;
- a chain edgerelay -> Dante -> Dante -> target with 64 MiB each way across a half-close (the
  client's FIN reaches the target, which still answers). Squid 5 and microsocks close a tunnel at
  the client's FIN, so no half-close crosses them;
- a pool whose first member is dead: sessions fail over, and the dead member is set aside;
- curl as the user-side client (SOCKS5 with the name, so the gateway's rules see it).

Dante's username method checks the system's password database, so the test adds a user of its
own for the run and removes it after.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway import (MIB, FileServer, Gateway, TestFailure, binary_from_argv, check, clean_env,  # noqa: E402
                     die_with_parent, log, running, socks5_connect, wait_until, EchoServer, recv_exact,
                     SocksError)

DANTE_USER = "edgerelay-socks"
DANTE_PASSWORD = "dante-pw-1"
SQUID_PASSWORD = "bobpw"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, logfile=None):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None and "exited"
    if wait_until(up, 30, 0.1) is not True:
        proc.kill()
        text = open(logfile).read() if logfile and os.path.exists(logfile) else ""
        raise TestFailure("%s did not start:\n%s" % (what, text))


def start_squid(d, port):
    os.makedirs(d)
    hashed = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"], input=SQUID_PASSWORD + "\n",
                            capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    with open(os.path.join(d, "htpasswd"), "w") as f:
        f.write("bob:%s\n" % hashed)
    conf = os.path.join(d, "squid.conf")
    with open(conf, "w") as f:
        f.write("""http_port 127.0.0.1:%(port)d
pid_filename %(d)s/squid.pid
cache_log %(d)s/cache.log
access_log stdio:%(d)s/access.log
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
visible_hostname corp-proxy
auth_param basic program /usr/lib/squid/basic_ncsa_auth %(d)s/htpasswd
auth_param basic realm corp
acl CONNECT method CONNECT
acl staff proxy_auth REQUIRED
http_access deny !CONNECT
http_access allow staff
http_access deny all
""" % {"port": port, "d": d})
    for p in os.listdir(d):
        os.chmod(os.path.join(d, p), 0o644)
    os.chmod(d, 0o777)
    proc = subprocess.Popen(["squid", "-N", "-f", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent, env=clean_env())
    wait_port(port, proc, "squid", os.path.join(d, "cache.log"))
    return proc


def start_dante(d, port, method="username"):
    os.makedirs(d)
    conf = os.path.join(d, "danted.conf")
    logfile = os.path.join(d, "danted.log")
    with open(conf, "w") as f:
        f.write("""logoutput: %(log)s
internal: 127.0.0.1 port = %(port)d
external: 127.0.0.1
socksmethod: %(method)s
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
  command: connect
  log: connect
}
""" % {"log": logfile, "port": port, "method": method})
    proc = subprocess.Popen(["danted", "-f", conf, "-N", "1"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent, env=clean_env())
    wait_port(port, proc, "danted", logfile)
    return proc


def start_microsocks(port):
    proc = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    wait_port(port, proc, "microsocks")
    return proc


def start_stunnel(d, port, to_port):
    """TLS in front of Squid: the https:// upstream (CONNECT inside TLS)."""
    os.makedirs(d)
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=proxy.test", "-addext", "subjectAltName=DNS:proxy.test", "-days", "2",
                        "-keyout", os.path.join(d, "proxy.key"), "-out", os.path.join(d, "proxy.pem")],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "openssl req failed: %s" % r.stderr)
    conf = os.path.join(d, "stunnel.conf")
    with open(conf, "w") as f:
        f.write("foreground = yes\npid =\noutput = %s/stunnel.log\n[proxy]\naccept = 127.0.0.1:%d\n"
                "connect = 127.0.0.1:%d\ncert = %s/proxy.pem\nkey = %s/proxy.key\n" % (d, port, to_port, d, d))
    proc = subprocess.Popen(["stunnel4", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    wait_port(port, proc, "stunnel", os.path.join(d, "stunnel.log"))
    return proc


def add_dante_user():
    subprocess.run(["userdel", DANTE_USER], capture_output=True, timeout=30)
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", DANTE_USER], check=True, timeout=30)
    subprocess.run(["chpasswd"], input="%s:%s\n" % (DANTE_USER, DANTE_PASSWORD), text=True, check=True, timeout=30)


class DigestSink:
    """Reads a connection to its end (the client's FIN), then answers the SHA-256 of what came and
    `down` bytes of a pattern whose digest it knows: integrity both ways and a half-close."""

    def __init__(self, down):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.down = down
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def block(i):
        return hashlib.sha256(b"down%d" % i).digest() * 2048  # 64 KiB

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(120)
        h = hashlib.sha256()
        try:
            # A length first; 0: read to the client's FIN (the half-close case).
            head = b""
            while len(head) < 8:
                data = c.recv(8 - len(head))
                if not data:
                    return
                head += data
            left = int.from_bytes(head, "big") or None
            while left is None or left > 0:
                data = c.recv(1 << 20 if left is None else min(1 << 20, left))
                if not data:
                    break
                h.update(data)
                if left is not None:
                    left -= len(data)
            c.sendall(h.digest())
            for i in range(self.down // 65536):
                c.sendall(self.block(i))
        except OSError:
            pass
        finally:
            c.close()

    def expected_down(self):
        h = hashlib.sha256()
        for i in range(self.down // 65536):
            h.update(self.block(i))
        return h.digest()


def through_chain_64mib(gw_port, sink, half_close):
    """64 MiB up, its digest and 64 MiB down. half_close: the end of the upload is the client's
    FIN, which must reach the target while the answer still comes back; otherwise a length says
    it (Squid 5 closes a CONNECT tunnel at the client's FIN, so no half-close crosses it)."""
    s = socks5_connect(("127.0.0.1", gw_port), "127.0.0.1", sink.port, timeout=120)
    up = hashlib.sha256()
    chunk = os.urandom(1 << 20)
    s.sendall((0 if half_close else 64 * MIB).to_bytes(8, "big"))
    for i in range(64):
        block = chunk[i:] + chunk[:i]
        up.update(block)
        s.sendall(block)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    digest = recv_exact(s, 32)
    check(digest == up.digest(), "64 MiB up through the chain arrived changed")
    down = hashlib.sha256()
    got = 0
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        got += len(data)
        down.update(data)
    s.close()
    check(got == sink.down, "down: %d bytes of %d" % (got, sink.down))
    check(down.digest() == sink.expected_down(), "64 MiB down through the chain arrived changed")


def echo_via(gw_port, echo_port, host="127.0.0.1"):
    s = socks5_connect(("127.0.0.1", gw_port), host, echo_port, timeout=10)
    s.sendall(b"ping through the upstream\n")
    got = recv_exact(s, 26)
    s.close()
    check(got == b"ping through the upstream\n", "echo through the upstream: %r" % got)


def curl_via(gw_port, url):
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "--socks5-hostname", "127.0.0.1:%d" % gw_port,
                          "-o", "-", url], capture_output=True, timeout=90)
    check(out.returncode == 0, "curl through the gateway failed: %s" % out.stderr.decode(errors="replace"))
    return hashlib.sha256(out.stdout).hexdigest()


def config_text(d, ports, dead_port):
    with open(os.path.join(d, "squid.password"), "w") as f:
        f.write(SQUID_PASSWORD + "\n")
    with open(os.path.join(d, "squid-wrong.password"), "w") as f:
        f.write("not-the-password\n")
    with open(os.path.join(d, "dante.password"), "w") as f:
        f.write(DANTE_PASSWORD + "\n")
    for name in ("squid.password", "squid-wrong.password", "dante.password"):
        os.chmod(os.path.join(d, name), 0o600)
    return """listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5], auth: none}
upstreams:
  - {name: squid, url: "http://127.0.0.1:%(squid)d", user: bob, password_file: %(d)s/squid.password}
  - {name: squid-wrong, url: "http://127.0.0.1:%(squid)d", user: bob, password_file: %(d)s/squid-wrong.password}
  - {name: dante, url: "socks5://127.0.0.1:%(dante)d", user: %(du)s, password_file: %(d)s/dante.password}
  - {name: ms, url: "socks5://127.0.0.1:%(ms)d", resolve: upstream}
  - {name: dead, url: "socks5://127.0.0.1:%(dead)d"}
  - {name: squid-tls, url: "https://127.0.0.1:%(tls)d", ca: %(d)s/stunnel/proxy.pem, server_name: proxy.test,
     user: bob, password_file: %(d)s/squid.password}
  - {name: both, chain: [dante, squid]}
  - {name: partner, url: "socks5://127.0.0.1:%(dante2)d"}
  - {name: socks-chain, chain: [dante, partner]}
  - {name: any, pool: [dead, ms], fail_after: 2, set_aside: 60s}
rules:
  - {name: by-squid, action: allow, to: ["127.0.0.1:%(p_squid)d"], via: squid}
  - {name: by-wrong, action: allow, to: ["127.0.0.1:%(p_wrong)d"], via: squid-wrong}
  - {name: by-dante, action: allow, to: ["127.0.0.1:%(p_dante)d"], via: dante}
  - {name: by-name, action: allow, to: ["localhost:%(p_ms)d"], via: ms}
  - {name: by-chain, action: allow, to: ["127.0.0.1:%(p_chain)d", "127.0.0.1:%(p_web)d"], via: both}
  - {name: by-half, action: allow, to: ["127.0.0.1:%(p_half)d"], via: socks-chain}
  - {name: by-tls, action: allow, to: ["127.0.0.1:%(p_tls)d"], via: squid-tls}
  - {name: by-pool, action: allow, to: ["127.0.0.1:%(p_pool)d"], via: any}
limits: {handshake_timeout: 5s, connect_timeout: 5s, idle_timeout: 60s, shutdown_grace: 3s}
log: {level: info, access: json}
""" % dict(ports, d=d, du=DANTE_USER, dead=dead_port)


def record_for(gw, before, target, timeout=10):
    def find():
        for r in gw.access_records()[before:]:
            if r.get("target") == target:
                return r
        return None
    rec = wait_until(find, timeout)
    check(rec is not None, "no access record for %s:\n%s" % (target, gw.stdout_text()))
    return rec


def main():
    binary = binary_from_argv()
    if os.geteuid() != 0:
        log("skipped: needs root for Dante's user")
        print("0 passed, 0 failed, 1 skipped")
        return
    d = tempfile.mkdtemp(prefix="edgerelay-chains-")
    os.chmod(d, 0o755)  # squid runs as its own user
    procs = []
    services = []
    user_added = False
    try:
        add_dante_user()
        user_added = True
        squid_port, dante_port, ms_port, dead_port = free_port(), free_port(), free_port(), free_port()
        procs.append(start_squid(os.path.join(d, "squid"), squid_port))
        procs.append(start_dante(os.path.join(d, "dante"), dante_port))
        procs.append(start_microsocks(ms_port))
        dante2_port = free_port()
        procs.append(start_dante(os.path.join(d, "dante2"), dante2_port, method="none"))
        tls_port = free_port()
        procs.append(start_stunnel(os.path.join(d, "stunnel"), tls_port, squid_port))
        echoes = {k: EchoServer() for k in ("squid", "wrong", "dante", "ms", "pool", "tls")}
        services.extend(echoes.values())
        sink = DigestSink(64 * MIB)
        half_sink = DigestSink(64 * MIB)
        web = FileServer(os.path.join(d, "www"), size=64 * MIB)
        services.append(web)
        ports = {"tls": tls_port, "p_tls": echoes["tls"].port, "dante2": dante2_port, "squid": squid_port, "dante": dante_port, "ms": ms_port,
                 "p_squid": echoes["squid"].port, "p_wrong": echoes["wrong"].port, "p_dante": echoes["dante"].port,
                 "p_ms": echoes["ms"].port, "p_pool": echoes["pool"].port, "p_chain": sink.port,
                 "p_web": web.port, "p_half": half_sink.port}
        gw = Gateway(binary, config_text(d, ports, dead_port), d)
        with running(gw):
            gw.start()
            port = gw.port()

            before = len(gw.access_records())
            echo_via(port, echoes["squid"].port)
            rec = record_for(gw, before, "127.0.0.1:%d" % echoes["squid"].port)
            check(rec.get("via") == "squid" and rec["result"] == "ok" and rec["rule"] == "by-squid",
                  "squid record: %r" % rec)
            squid_log = open(os.path.join(d, "squid", "access.log")).read()
            check("CONNECT 127.0.0.1:%d" % echoes["squid"].port in squid_log and " bob " in squid_log,
                  "squid did not log bob's CONNECT:\n" + squid_log)
            log("squid with Basic auth: ok")

            before = len(gw.access_records())
            try:
                echo_via(port, echoes["wrong"].port)
                raise TestFailure("a session through squid with a wrong password connected")
            except (OSError, SocksError):
                pass
            rec = record_for(gw, before, "127.0.0.1:%d" % echoes["wrong"].port)
            check(rec.get("via") == "squid-wrong" and rec.get("detail") == "hop squid-wrong: upstream_407",
                  "wrong-password record: %r" % rec)
            check("not-the-password" not in gw.stderr_text() + gw.stdout_text(), "a password reached the log")
            log("squid with a wrong password: %s" % rec["detail"])

            before = len(gw.access_records())
            echo_via(port, echoes["tls"].port)
            rec = record_for(gw, before, "127.0.0.1:%d" % echoes["tls"].port)
            check(rec.get("via") == "squid-tls" and rec["result"] == "ok", "https upstream record: %r" % rec)
            log("squid behind TLS (https:// upstream, verified for proxy.test): ok")

            before = len(gw.access_records())
            echo_via(port, echoes["dante"].port)
            rec = record_for(gw, before, "127.0.0.1:%d" % echoes["dante"].port)
            check(rec.get("via") == "dante" and rec["result"] == "ok", "dante record: %r" % rec)
            dante_log = open(os.path.join(d, "dante", "danted.log")).read()
            check(DANTE_USER in dante_log, "dante did not log the user:\n" + dante_log[-2000:])
            log("dante with username auth: ok")

            before = len(gw.access_records())
            echo_via(port, echoes["ms"].port, host="localhost")
            rec = record_for(gw, before, "localhost:%d" % echoes["ms"].port)
            check(rec.get("via") == "ms" and rec["result"] == "ok" and rec["dialled"] == "",
                  "microsocks by name: %r" % rec)
            log("microsocks, name resolved upstream: ok")

            t0 = time.monotonic()
            through_chain_64mib(port, sink, half_close=False)
            log("chain dante -> squid: 64 MiB each way in %.1fs" % (time.monotonic() - t0))
            t0 = time.monotonic()
            through_chain_64mib(port, half_sink, half_close=True)
            log("chain dante -> dante: 64 MiB each way across a half-close in %.1fs" % (time.monotonic() - t0))
            before = len(gw.access_records())
            digest = curl_via(port, web.url())
            check(digest == web.sha256, "curl through the chain got a different 64 MiB file")
            rec = record_for(gw, before, "127.0.0.1:%d" % web.port)
            check(rec.get("via") == "both" and rec["bytes_down"] >= 64 * MIB, "curl record: %r" % rec)
            log("curl through the chain: 64 MiB ok")

            for i in range(3):
                before = len(gw.access_records())
                echo_via(port, echoes["pool"].port)
                rec = record_for(gw, before, "127.0.0.1:%d" % echoes["pool"].port)
                check(rec.get("via") == "any" and rec["result"] == "ok", "pool session %d: %r" % (i, rec))
            check(gw.wait_stderr(r"pool 'any': member 'dead' failed 2 time\(s\) in a row: set aside", timeout=5)
                  is not None, "the dead member was not set aside:\n" + gw.stderr_text())
            log("pool fails over from a dead member and sets it aside")
        print("1 passed, 0 failed")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in services:
            s.close()
        if user_added:
            subprocess.run(["userdel", DANTE_USER], capture_output=True, timeout=30)
        shutil.rmtree(d, ignore_errors=True)
    log("ok")


if __name__ == "__main__":
    main()
