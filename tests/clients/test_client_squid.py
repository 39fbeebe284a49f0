#!/usr/bin/env python3
"""edgerelay client through a real corporate firewall: Squid (CONNECT to 443 only, Basic auth) and
iptables owner rules inside this test's network namespace.

  application (uid nobody) --> edgerelay client (uid daemon) --> Squid (uid proxy) --> gateway :443
                                                                                        --> target

The owner rules let the application reach only the client's port, the client reach only Squid and
Squid reach only the gateway's port 443: the test first shows that a direct attempt from the
application to the target fails, so what passes below crossed the proxy. Through it: curl and
proxychains4 on the client's SOCKS5 and HTTP listeners, a forward door whose server speaks first,
64 MiB both ways, half-close, 200 concurrent sessions, a gateway restart, a wrong CA (the error
names the issuer) and a wrong proxy password (a clear 407).

Needs root (users, iptables) and squid, iptables, curl, proxychains4, openssl: CI has them; a
missing one fails the test with a message, it never skips.
"""

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway import (Gateway, TestFailure, check, clean_env, die_with_parent, log, make_password_hash,  # noqa: E402
                     recv_exact, running, socks5_handshake, wait_until)

GW_ADDR = "127.0.0.3"      # the gateway's listener, port 443
SQUID_ADDR = "127.0.0.2"   # the corporate proxy, port 3128
TARGET_ADDR = "127.0.0.4"  # what the application wants to reach
APP_USER, CLIENT_USER, SQUID_USER = "nobody", "daemon", "proxy"
MIB = 1024 * 1024


def need(condition, message):
    if not condition:
        raise TestFailure("cannot run: " + message)


def uid_of(name):
    return pwd.getpwnam(name).pw_uid


def as_user(name):
    entry = pwd.getpwnam(name)

    def drop():
        die_with_parent()
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    return drop


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    check(r.returncode == 0, "%s failed (%d): %s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


def app_run(args, timeout=90, env=None):
    """Runs a command as the application user; returns CompletedProcess (bytes)."""
    return subprocess.run(args, capture_output=True, timeout=timeout, preexec_fn=as_user(APP_USER),
                          env=env or clean_env())


def app_python(mode, *args, timeout=120):
    """This file's --app MODE, as the application user; its stdout (text) or a failure."""
    r = app_run([sys.executable, os.path.abspath(__file__), "--app", mode] + [str(a) for a in args], timeout=timeout)
    check(r.returncode == 0, "app %s %s failed (%d): %s %s" % (mode, args, r.returncode, r.stdout.decode(),
                                                                r.stderr.decode()))
    return r.stdout.decode()


# -- what the application does (run as nobody) ------------------------------------------------

def socks_to(client_port, host, port, timeout=20):
    s = socket.create_connection(("127.0.0.1", client_port), timeout=timeout)
    socks5_handshake(s, host, port)
    return s


def app_main(mode, args):
    if mode == "direct":
        # The firewall must stop this: any answer means the test proves nothing.
        host, port = args[0], int(args[1])
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as e:
            print("blocked: %s" % e)
            return 0
        print("reached")
        return 1
    client_port = int(args[0])
    if mode == "upload":
        # 64 MiB up; the sink answers with the SHA-256 of what it got, after our half-close.
        size = int(args[3])
        s = socks_to(client_port, args[1], int(args[2]))
        block = hashlib.sha256(b"edgerelay").digest() * 2048  # 64 KiB
        digest = hashlib.sha256()
        sent = 0
        while sent < size:
            chunk = block[: min(len(block), size - sent)]
            s.sendall(chunk)
            digest.update(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)  # half-close: the answer still comes back
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        print(digest.hexdigest(), answer.decode())
        return 0
    if mode == "download":
        size = int(args[3])
        s = socks_to(client_port, args[1], int(args[2]))
        s.sendall(b"%d\n" % size)
        s.shutdown(socket.SHUT_WR)
        digest = hashlib.sha256()
        got = 0
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            digest.update(chunk)
            got += len(chunk)
        print(got, digest.hexdigest())
        return 0
    if mode == "many":
        count = int(args[3])
        socks = []
        for i in range(count):
            socks.append(socks_to(client_port, args[1], int(args[2]), timeout=60))
        for i, s in enumerate(socks):
            s.sendall(b"session %d\n" % i)
        ok = 0
        for i, s in enumerate(socks):
            want = b"session %d\n" % i
            if recv_exact(s, len(want)) == want:
                ok += 1
            s.close()
        print(ok)
        return 0
    if mode == "banner":
        # A forward door: connect and only read. The server speaks first (as 602SQL's does).
        s = socket.create_connection(("127.0.0.1", client_port), timeout=20)
        print(recv_exact(s, int(args[1])).decode())
        return 0
    if mode == "refused":
        # A SOCKS5 reply that is not success: print its code.
        try:
            socks_to(client_port, args[1], int(args[2]), timeout=40).close()
        except Exception as e:  # noqa: BLE001 - the reply code is what we print
            print("failed:", e)
            return 0
        print("connected")
        return 0
    raise SystemExit("unknown app mode " + mode)


# -- the target's services --------------------------------------------------------------------

class Service:
    """A threaded TCP service on TARGET_ADDR with one handler per connection."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((TARGET_ADDR, 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(60)
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


def sink(c):
    digest = hashlib.sha256()
    while True:
        chunk = c.recv(1 << 16)
        if not chunk:
            break
        digest.update(chunk)
    c.sendall(digest.hexdigest().encode())


def source(c):
    line = b""
    while not line.endswith(b"\n"):
        chunk = c.recv(64)
        if not chunk:
            return
        line += chunk
    size = int(line)
    block = hashlib.sha256(b"down").digest() * 2048
    sent = 0
    while sent < size:
        chunk = block[: min(len(block), size - sent)]
        c.sendall(chunk)
        sent += len(chunk)


def echo(c):
    while True:
        chunk = c.recv(4096)
        if not chunk:
            return
        c.sendall(chunk)


def banner(c):
    c.sendall(b"602SQL server ready")
    c.recv(1)


# -- set-up -----------------------------------------------------------------------------------

def make_pki(d):
    """A CA that signed the gateway's certificate, and an unrelated CA (the 'inspecting proxy')."""
    def openssl(*args):
        sh(["openssl"] + list(args), cwd=d)
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=edgerelay test %s" % ca, "-keyout", ca + ".key", "-out", ca + ".pem")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=gw.test",
            "-keyout", "gw.key", "-out", "gw.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:gw.test,IP:%s\n" % GW_ADDR)
    openssl("x509", "-req", "-in", "gw.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "gw.pem")


def firewall(client):
    """OUTPUT owner rules: each user reaches the next hop only (the application: the client's ports)."""
    rules = [["-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]]
    for name in ("local", "sql"):
        rules.append(["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(uid_of(APP_USER)), "-p", "tcp", "-d",
                      "127.0.0.1", "--dport", str(client.port(name)), "-j", "ACCEPT"])
    rules += [
        ["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(uid_of(APP_USER)), "-j", "REJECT"],
        ["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(uid_of(CLIENT_USER)), "-p", "tcp", "-d", SQUID_ADDR,
         "--dport", "3128:3130", "-j", "ACCEPT"],
        ["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(uid_of(CLIENT_USER)), "-j", "REJECT"],
        ["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(uid_of(SQUID_USER)), "-p", "tcp", "-d", GW_ADDR,
         "--dport", "443", "-j", "ACCEPT"],
        ["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(uid_of(SQUID_USER)), "-p", "tcp", "-d", GW_ADDR,
         "--dport", "80", "-j", "ACCEPT"],
        ["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(uid_of(SQUID_USER)), "-j", "REJECT"],
    ]
    for r in rules:
        sh(["iptables"] + r)
    log("firewall:\n" + sh(["iptables", "-S", "OUTPUT"]))


SQUID_CONNECT_443 = """acl SSL_ports port 443
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access deny !CONNECT
"""
# No CONNECT at all; requests it forwards may upgrade to WebSocket. Squid compares the protocol
# name case-sensitively, and RFC 6455 clients (Beast, browsers) send "websocket".
SQUID_UPGRADE_ONLY = """acl CONNECT method CONNECT
http_access deny CONNECT
http_upgrade_request_protocols websocket allow all
http_upgrade_request_protocols WebSocket allow all
"""
# Plain HTTP only: no CONNECT, and no http_upgrade_request_protocols, so Squid strips Upgrade from
# the requests it forwards (test_client_squid_plain.py).
SQUID_PLAIN_ONLY = """acl CONNECT method CONNECT
http_access deny CONNECT
"""


def start_squid(d, port, policy):
    os.makedirs(d)
    sh(["sh", "-c", "openssl passwd -apr1 -in /dev/stdin > %s/htpasswd" % d], input="bobpw\n")
    # An htpasswd line is "user:hash".
    with open(os.path.join(d, "htpasswd")) as f:
        hashed = f.read().strip()
    with open(os.path.join(d, "htpasswd"), "w") as f:
        f.write("bob:%s\n" % hashed)
    conf = os.path.join(d, "squid.conf")
    with open(conf, "w") as f:
        f.write("""http_port %(addr)s:%(port)d
pid_filename %(d)s/squid.pid
cache_log %(d)s/cache.log
access_log stdio:%(d)s/access.log
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
visible_hostname corp-proxy
auth_param basic program /usr/lib/squid/basic_ncsa_auth %(d)s/htpasswd
auth_param basic realm corp
acl staff proxy_auth REQUIRED
%(policy)shttp_access allow staff
http_access deny all
""" % {"addr": SQUID_ADDR, "port": port, "d": d, "policy": policy})
    for p in os.listdir(d):
        os.chmod(os.path.join(d, p), 0o644 if os.path.isfile(os.path.join(d, p)) else 0o755)
    os.chmod(d, 0o777)
    proc = subprocess.Popen(["squid", "-N", "-f", conf], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=die_with_parent, env=clean_env())

    def up():
        try:
            socket.create_connection((SQUID_ADDR, port), timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None and "exited"
    state = wait_until(up, 30, 0.1)
    if state is not True:
        proc.kill()
        out = proc.stdout.read().decode(errors="replace")
        cache_log = open(os.path.join(d, "cache.log")).read() if os.path.exists(os.path.join(d, "cache.log")) else ""
        raise TestFailure("squid did not start: %s\n%s" % (out, cache_log))
    return proc


def client_wrapper(d, binary):
    """`edgerelay client` as the Gateway helper runs `edgerelay --config FILE`."""
    path = os.path.join(d, "edgerelay-client")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec %s client "$@"\n' % binary)
    os.chmod(path, 0o755)
    return path


def client_config(d, ca, proxy_secret, sql_port, transport="socks5", squid_port=3128, gw_port=443):
    tls = "  tls: {ca: %s, server_name: gw.test}\n" % ca if gw_port == 443 else ""
    return """listeners:
  - {name: local, bind: "127.0.0.1:0", protocols: [socks5, socks4, http]}
  - {name: sql, bind: "127.0.0.1:0", forward: sql}
backends:
  - {name: sql, host: %(target)s, portbase: %(portbase)d}
gateway:
  address: "%(gw)s:%(gw_port)d"
%(tls)s  transport: %(transport)s
  user: alice
  password_file: alice.secret
proxy: {url: "http://%(squid)s:%(squid_port)d", user: bob, password_file: %(proxy_secret)s}
limits: {connect_timeout: 8s, handshake_timeout: 5s, idle_timeout: 60s, shutdown_grace: 2s, per_source: 1000}
log: {level: info, access: json}
""" % {"target": TARGET_ADDR, "portbase": sql_port - 1, "gw": GW_ADDR, "gw_port": gw_port, "tls": tls,
       "transport": transport, "squid": SQUID_ADDR, "squid_port": squid_port, "proxy_secret": proxy_secret}


def gateway_config(alice_hash, sql_port):
    return """listeners:
  - name: tls
    bind: "%(gw)s:443"
    protocols: [socks5, websocket]
    auth: password
    tls: {cert: gw.pem, key: gw.key, required: true}
  - {name: plain, bind: "%(gw)s:80", protocols: [websocket, polling], auth: password}
backends:
  - {name: sql, host: %(target)s, portbase: %(portbase)d}
users:
  - {name: alice, password: "%(hash)s"}
rules:
  - {name: alice-target, action: allow, users: [alice], to: ["%(target)s", "backend:sql"]}
limits: {connect_timeout: 5s, idle_timeout: 60s, shutdown_grace: 2s, per_source: 1000}
log: {level: info, access: json}
""" % {"gw": GW_ADDR, "target": TARGET_ADDR, "portbase": sql_port - 1, "hash": alice_hash}


class Scene:
    """What every client run shares: the target's services, the gateway, the paths."""

    def __init__(self, binary, d):
        self.binary, self.d = binary, d
        self.sinks, self.sources, self.echoes, self.banners = (Service(h) for h in (sink, source, echo, banner))
        self.services = [self.sinks, self.sources, self.echoes, self.banners]
        self.web_port = 0
        self.gw = None

    def client(self, name, **kw):
        text = client_config(self.d, kw.pop("ca", "ca.pem"), kw.pop("proxy_secret", "bob.secret"), self.banners.port,
                             **kw)
        c = Gateway(self.wrapper, text, self.d, preexec_fn=as_user(CLIENT_USER), name=name)
        os.chmod(c.config_path, 0o644)
        return c


def exercise(scene, client, label, http_forward=True):
    """Everything an application does through a running client, behind the firewall."""
    local_port = client.port("local")
    url = "http://%s:%d/hello.txt" % (TARGET_ADDR, scene.web_port)
    # SOCKS4 too: the stock 602SQL client speaks only SOCKS4 to its one firewall.
    proxies = ["socks5h://127.0.0.1:%d" % local_port, "socks5://127.0.0.1:%d" % local_port,
               "socks4://127.0.0.1:%d" % local_port, "socks4a://127.0.0.1:%d" % local_port]
    if http_forward:
        proxies.append("http://127.0.0.1:%d" % local_port)
    for proxy_arg in proxies:
        r = app_run(["curl", "-sS", "--max-time", "20", "-x", proxy_arg, url])
        check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
              "%s: curl -x %s: %d %s %s" % (label, proxy_arg, r.returncode, r.stdout, r.stderr))
    r = app_run(["curl", "-sS", "--max-time", "20", "-p", "-x", "http://127.0.0.1:%d" % local_port, url])
    check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
          "%s: curl -p (CONNECT) through the client: %d %s" % (label, r.returncode, r.stderr))
    pc = os.path.join(scene.d, "proxychains-%d.conf" % local_port)
    with open(pc, "w") as f:
        f.write("strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 10000\n"
                "[ProxyList]\nsocks5 127.0.0.1 %d\n" % local_port)
    os.chmod(pc, 0o644)
    r = app_run(["proxychains4", "-f", pc, "curl", "-sS", "--max-time", "20", url])
    check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
          "%s: proxychains4 curl: %d %s %s" % (label, r.returncode, r.stdout, r.stderr))
    log(label + ": curl (socks5h, socks5, socks4, socks4a%s, CONNECT) and proxychains4 crossed Squid"
        % (", http forward" if http_forward else ""))

    out = app_python("banner", client.port("sql"), len("602SQL server ready"))
    check(out.strip() == "602SQL server ready", "%s: forward door, server speaks first: %r" % (label, out))
    log(label + ": the forward door opened its tunnel on connect (the server spoke first)")

    t0 = time.monotonic()
    out = app_python("upload", local_port, TARGET_ADDR, scene.sinks.port, 64 * MIB).split()
    check(len(out) == 2 and out[0] == out[1], "%s: 64 MiB up then half-close: %s" % (label, out))
    up_s = time.monotonic() - t0
    t0 = time.monotonic()
    out = app_python("download", local_port, TARGET_ADDR, scene.sources.port, 64 * MIB).split()
    block = hashlib.sha256(b"down").digest() * 2048
    want = hashlib.sha256(block * (64 * MIB // len(block))).hexdigest()
    check(out == [str(64 * MIB), want], "%s: 64 MiB down: %s" % (label, out))
    down_s = time.monotonic() - t0
    log("%s: 64 MiB up in %.2fs (%.0f MiB/s, then half-close: the answer came back), 64 MiB down in %.2fs "
        "(%.0f MiB/s)" % (label, up_s, 64 / up_s, down_s, 64 / down_s))

    out = app_python("many", local_port, TARGET_ADDR, scene.echoes.port, 200, timeout=180)
    check(out.strip() == "200", "%s: 200 concurrent sessions: %s echoed" % (label, out.strip()))
    log(label + ": 200 concurrent sessions")


def restart_gateway(scene, client, label):
    """The gateway goes away: new sessions fail with a SOCKS reply, then reconnect once it is back."""
    local_port = client.port("local")
    scene.gw.stop()
    out = app_python("refused", local_port, TARGET_ADDR, scene.echoes.port)
    check(out.startswith("failed: SOCKS5 reply"), "%s: a session without a gateway: %s" % (label, out))
    line = client.wait_stderr(r"no tunnel to the gateway .* hop", timeout=10)
    check(line is not None, "%s: the client did not log the missing gateway" % label)
    log(label + ": gateway down:", line)
    scene.gw = Gateway(scene.binary, scene.gw_text, scene.gw_dir)
    scene.gw.start(listeners=("tls", "plain"))
    out = app_python("many", local_port, TARGET_ADDR, scene.echoes.port, 5)
    check(out.strip() == "5", "%s: after the gateway restart: %s" % (label, out))
    records = client.access_records()
    check(any(rec.get("detail", "").startswith("gateway_") for rec in records),
          "%s: no access record names the gateway failure: %s" % (label, records[-3:]))
    log(label + ": after a gateway restart new sessions reconnect")


def main():
    binary = os.path.abspath(sys.argv[1])
    need(os.geteuid() == 0, "needs root (iptables owner rules and three users)")
    need(os.environ.get("EDGERELAY_NETNS") == "1", "needs its own network namespace (tests/support/in_netns.sh)")
    for tool in ("squid", "iptables", "curl", "proxychains4", "openssl"):
        need(shutil.which(tool) is not None, "%s is not installed (scripts/install-deps.sh)" % tool)
    need(os.path.exists("/usr/lib/squid/basic_ncsa_auth"), "squid's basic_ncsa_auth is missing")
    for u in (APP_USER, CLIENT_USER, SQUID_USER):
        uid_of(u)

    d = tempfile.mkdtemp(prefix="edgerelay-client-")
    os.chmod(d, 0o755)
    squids = []
    scene = None
    web = None
    try:
        make_pki(d)
        for name, text in (("alice.secret", "alicepw\n"), ("bob.secret", "bobpw\n"), ("bob-wrong.secret", "nope\n")):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        scene = Scene(binary, d)
        files = tempfile.mkdtemp(dir=d)
        with open(os.path.join(files, "hello.txt"), "w") as f:
            f.write("hello through the corporate proxy\n")
        web = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", TARGET_ADDR, "--directory", files],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        line = web.stdout.readline().decode()
        scene.web_port = int(line.split("port ")[1].split(" ")[0])

        scene.gw_dir = os.path.join(d, "gw")
        os.mkdir(scene.gw_dir)
        for f in ("gw.pem", "gw.key"):
            shutil.copy(os.path.join(d, f), scene.gw_dir)
        scene.gw_text = gateway_config(make_password_hash(binary, "alicepw"), scene.banners.port)
        scene.gw = Gateway(binary, scene.gw_text, scene.gw_dir)
        scene.gw.start(listeners=("tls", "plain"))

        squids.append(start_squid(os.path.join(d, "squid-connect"), 3128, SQUID_CONNECT_443))
        squids.append(start_squid(os.path.join(d, "squid-upgrade"), 3129, SQUID_UPGRADE_ONLY))
        scene.wrapper = client_wrapper(d, binary)
        for p in os.listdir(d):
            full = os.path.join(d, p)
            if os.path.isfile(full):
                os.chmod(full, 0o755 if p == "edgerelay-client" else 0o644)

        # A bad client config is refused with file:line:col before anything starts.
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("listeners:\n  - {name: l, bind: \"127.0.0.1:0\"}\ngateway: {address: \"gw.test\"}\n")
        r = subprocess.run([binary, "client", "--config", bad], capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and "bad.yaml:3:20: bad gateway address 'gw.test'" in r.stderr,
              "a bad client config: %d %s" % (r.returncode, r.stderr))

        # Situation 1, SOCKS5 inside TLS through CONNECT to 443.
        client = scene.client("socks5.yaml")
        r = subprocess.run([binary, "client", "--config", client.config_path, "--check"], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 0 and "socks5 inside TLS, CONNECT via proxy %s:3128" % SQUID_ADDR in r.stdout,
              "client --check: %d %s %s" % (r.returncode, r.stdout, r.stderr))
        with running(client):
            client.start(listeners=("local", "sql"))
            firewall(client)
            out = app_python("direct", TARGET_ADDR, scene.web_port)
            check(out.startswith("blocked"), "the application reached the target directly: %s" % out)
            r = subprocess.run(["curl", "-sS", "--max-time", "5", "http://%s:%d/" % (GW_ADDR, 443)],
                               capture_output=True, timeout=30, preexec_fn=as_user(CLIENT_USER))
            check(r.returncode != 0, "the client's user reached the gateway without the proxy")
            log("direct attempts are blocked by the firewall")
            exercise(scene, client, "socks5 over CONNECT+TLS")
            restart_gateway(scene, client, "socks5 over CONNECT+TLS")
        subprocess.run(["iptables", "-F", "OUTPUT"], check=True, timeout=30)

        # Situation 1 again with auto: WebSocket over CONNECT+TLS.
        client = scene.client("auto.yaml", transport="auto")
        with running(client):
            client.start(listeners=("local", "sql"))
            firewall(client)
            exercise(scene, client, "auto (websocket over CONNECT+TLS)", http_forward=False)
            restart_gateway(scene, client, "auto (websocket over CONNECT+TLS)")
        subprocess.run(["iptables", "-F", "OUTPUT"], check=True, timeout=30)

        # Situation 2: no CONNECT, WebSocket upgrades allowed; a plain gateway listener.
        client = scene.client("upgrade.yaml", transport="websocket", squid_port=3129, gw_port=80)
        with running(client):
            client.start(listeners=("local", "sql"))
            firewall(client)
            exercise(scene, client, "websocket through an upgrade-only Squid", http_forward=False)
            check("gateway_connect_refused" not in client.stdout_text(), "CONNECT was used")
        subprocess.run(["iptables", "-F", "OUTPUT"], check=True, timeout=30)

        # auto behind the upgrade-only Squid: the CONNECT is refused, the forwarded upgrade works, and
        # the client keeps to it.
        client = scene.client("auto-upgrade.yaml", transport="auto", squid_port=3129, gw_port=80)
        with running(client):
            client.start(listeners=("local", "sql"))
            firewall(client)
            url = "http://%s:%d/hello.txt" % (TARGET_ADDR, scene.web_port)
            for _ in range(3):
                r = app_run(["curl", "-sS", "--max-time", "20", "-x", "socks5h://127.0.0.1:%d" % client.port("local"),
                             url])
                check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
                      "auto behind an upgrade-only Squid: %d %s" % (r.returncode, r.stderr))
            text = client.stderr_text()
            check(text.count("failed at the connect hop") == 1 and "gateway reached by websocket, plain-HTTP proxy" in text,
                  "auto did not fall back once and remember it:\n" + text)
            log("auto: CONNECT refused, then the forwarded WebSocket upgrade, remembered for the next sessions")
        subprocess.run(["iptables", "-F", "OUTPUT"], check=True, timeout=30)

        # A wrong CA (as behind a TLS-inspecting proxy): the error names the issuer.
        wrong = scene.client("wrong-ca.yaml", ca="other-ca.pem")
        with running(wrong):
            wrong.start(listeners=("local", "sql"))
            firewall(wrong)
            out = app_python("refused", wrong.port("local"), TARGET_ADDR, scene.echoes.port)
            check(out.startswith("failed"), "a session with the wrong CA: %s" % out)
            line = wrong.wait_stderr(r"tls_verify hop", timeout=10)
            check(line is not None, "no tls_verify failure logged:\n" + wrong.stderr_text())
            log("wrong CA:", line)
            text = wrong.stderr_text()
            check("issued by /CN=edgerelay test ca" in text and "TLS-inspecting proxy may be in the way" in text,
                  "the TLS error does not name the issuer: " + text)
        subprocess.run(["iptables", "-F", "OUTPUT"], check=True, timeout=30)
        # A wrong proxy password: a clear 407.
        denied = scene.client("wrong-proxy.yaml", proxy_secret="bob-wrong.secret")
        with running(denied):
            denied.start(listeners=("local", "sql"))
            firewall(denied)
            out = app_python("refused", denied.port("local"), TARGET_ADDR, scene.echoes.port)
            check(out.startswith("failed"), "a session with a wrong proxy password: %s" % out)
            line = denied.wait_stderr(r"proxy_auth hop: proxy .* answered 407 Proxy Authentication Required", timeout=10)
            check(line is not None, "no clear 407:\n" + denied.stderr_text())
            log("wrong proxy password:", line)
            check("nope" not in denied.stderr_text() and "bobpw" not in denied.stderr_text(),
                  "a password reached the log")
        log("wrong CA and 407 give clear errors")
    finally:
        subprocess.run(["iptables", "-F", "OUTPUT"], timeout=30)
        if web is not None:
            web.kill()
        if scene is not None:
            if scene.gw is not None:
                scene.gw.kill()
            for x in scene.services:
                x.close()
        for squid in squids:
            squid.terminate()
            try:
                squid.wait(10)
            except subprocess.TimeoutExpired:
                squid.kill()
        shutil.rmtree(d, ignore_errors=True)
    log("ok")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--app":
        sys.exit(app_main(sys.argv[2], sys.argv[3:]))
    main()
