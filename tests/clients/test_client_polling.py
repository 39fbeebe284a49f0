#!/usr/bin/env python3
"""`edgerelay client` with `transport: polling`, straight to the gateway's HTTP-polling door
(docs/tunnel-protocol.md, "HTTP polling"): 64 MiB each way with SHA-256, half-close each way (the
application's, and the target's while it still reads), a target the gateway's rules deny (403,
answered to the application as a refusal and logged as denied, not as a broken transport), the
gateway's idle deadline ending a silent session on both ends, and a TLS listener verified against
its CA. Also `auto` with no proxy falling back to polling when the listener has no WebSocket door."""

import hashlib
import os
import socket
import subprocess
import threading
import time

from gateway import (Gateway, SocksError, check, config_yaml, log, main, make_password_hash, recv_exact, run_parts,
                     running, socks5_handshake, wait_until)

MIB = 1024 * 1024


class Service:
    """A threaded TCP service on loopback, one handler per connection."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
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
    """Reads to the client's half-close, then answers with the SHA-256 of what came."""
    digest = hashlib.sha256()
    while True:
        chunk = c.recv(1 << 16)
        if not chunk:
            break
        digest.update(chunk)
    c.sendall(digest.hexdigest().encode())


BLOCK = hashlib.sha256(b"down").digest() * 2048  # 64 KiB


def source(c):
    """Reads a size line (then the client's half-close), sends that many bytes, closes."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = c.recv(64)
        if not chunk:
            return
        line += chunk
    size = int(line)
    sent = 0
    while sent < size:
        chunk = BLOCK[: min(len(BLOCK), size - sent)]
        c.sendall(chunk)
        sent += len(chunk)


def client_config(gw_port, transport, idle="30s", tls=""):
    return """listeners:
  - {name: local, bind: "127.0.0.1:0", protocols: [socks5, http]}
gateway:
  address: "127.0.0.1:%d"
%s  transport: %s
  user: alice
  password_file: alice.secret
limits: {connect_timeout: 8s, handshake_timeout: 5s, idle_timeout: %s, shutdown_grace: 2s}
log: {level: info, access: json}
""" % (gw_port, tls, transport, idle)


def make_pki(d):
    """A CA and the gateway's certificate for 127.0.0.1 (name gw.test)."""
    def openssl(*args):
        r = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "openssl %s: %s" % (args[0], r.stderr))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=edgerelay polling test ca", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=gw.test",
            "-keyout", "gw.key", "-out", "gw.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:gw.test,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "gw.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "gw.pem")


def start_pair(binary, workdir, transport="polling", protocols="[polling]", rules=None, gw_idle="30s",
               polling_idle=None, tls=False):
    """The gateway (polling door, Basic auth as alice) and a client to it; both started."""
    users = '  - {name: alice, password: "%s"}\n' % make_password_hash(binary, "alicepw")
    if rules is None:
        rules = ['{name: alice-loopback, action: allow, users: [alice], to: ["127.0.0.0/8"]}']
    extra = ", polling_idle: %s" % polling_idle if polling_idle else ""
    client_tls = ""
    if tls:
        make_pki(workdir)
        extra += ", tls: {cert: gw.pem, key: gw.key, required: true}"
        client_tls = "  tls: {ca: ca.pem, server_name: gw.test}\n"
    gw = Gateway(binary, config_yaml(listener_extra=extra, protocols=protocols, auth="password", users=users,
                                     rules=rules, limits={"idle_timeout": gw_idle}), workdir)
    gw.start()
    with open(os.path.join(workdir, "alice.secret"), "w") as f:
        f.write("alicepw\n")
    wrapper = os.path.join(workdir, "edgerelay-client")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec %s client "$@"\n' % binary)
    os.chmod(wrapper, 0o755)
    client = Gateway(wrapper, client_config(gw.port(), transport, tls=client_tls), workdir, name="client.yaml")
    client.start(listeners=("local",))
    return gw, client


def socks_to(client, port, timeout=30):
    s = socket.create_connection(("127.0.0.1", client.port("local")), timeout=timeout)
    socks5_handshake(s, "127.0.0.1", port)
    return s


def polling_records(gw):
    return [r for r in gw.access_records() if r.get("protocol") == "polling"]


def bulk_and_half_close(binary, workdir):
    sinks, sources = Service(sink), Service(source)
    gw, client = start_pair(binary, workdir)
    with running(gw), running(client):
        check("tunnel: polling, direct to 127.0.0.1:%d" % gw.port() in client.stderr_text(),
              "the client did not log its polling tunnel:\n" + client.stderr_text())
        # Up: 64 MiB, then the application's half-close; the target's answer still comes back.
        s = socks_to(client, sinks.port)
        digest = hashlib.sha256()
        block = hashlib.sha256(b"up").digest() * 2048
        t0 = time.monotonic()
        for _ in range(64 * MIB // len(block)):
            s.sendall(block)
            digest.update(block)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        up_s = time.monotonic() - t0
        check(answer.decode() == digest.hexdigest(), "64 MiB up: the sink saw %r, we sent %s"
              % (answer[:80], digest.hexdigest()))
        s.close()
        # Down: the application half-closes first; 64 MiB come back, then the target's close.
        s = socks_to(client, sources.port)
        t0 = time.monotonic()
        s.sendall(b"%d\n" % (64 * MIB))
        s.shutdown(socket.SHUT_WR)
        got = hashlib.sha256()
        n = 0
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got.update(chunk)
            n += len(chunk)
        down_s = time.monotonic() - t0
        want = hashlib.sha256(BLOCK * (64 * MIB // len(BLOCK))).hexdigest()
        check(n == 64 * MIB and got.hexdigest() == want, "64 MiB down: %d bytes, sha256 %s" % (n, got.hexdigest()))
        s.close()
        log("polling, direct: 64 MiB up in %.1fs (%.1f MiB/s), 64 MiB down in %.1fs (%.1f MiB/s)"
            % (up_s, 64 / up_s, down_s, 64 / down_s))

        # The target half-closes first and goes on reading: our bytes after its fin still reach it.
        heard = []

        def speaks_first(c):
            c.sendall(b"banner")
            c.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            heard.append(data)
        first = Service(speaks_first)
        s = socks_to(client, first.port)
        check(recv_exact(s, 6) == b"banner", "the target's banner")
        check(s.recv(10) == b"", "the target's half-close reached the application")
        s.sendall(b"after your fin")
        s.shutdown(socket.SHUT_WR)
        check(wait_until(lambda: heard, 10), "the target never saw our half-close")
        check(heard[0] == b"after your fin", "the target read %r after its own fin" % heard)
        s.close()
        first.close()
        check(wait_until(lambda: len(polling_records(gw)) == 3, 10), "gateway lines: %r" % gw.access_records())
        recs = polling_records(gw)
        check(all(r["result"] == "ok" for r in recs), "gateway lines: %r" % recs)
        check(any(r["bytes_up"] == 64 * MIB for r in recs) and any(r["bytes_down"] == 64 * MIB for r in recs),
              "gateway byte counts: %r" % recs)
        log("half-close both ways, one gateway line per session with the bytes")
    sinks.close()
    sources.close()


def refused(binary, workdir):
    rules = ['{name: alice-port-1, action: allow, users: [alice], to: ["127.0.0.1:1"]}']
    echo = Service(sink)
    gw, client = start_pair(binary, workdir, rules=rules)
    with running(gw), running(client):
        try:
            socks_to(client, echo.port).close()
            raise AssertionError("a denied target was opened")
        except SocksError as e:
            check(e.code == 0x02, "a denied target: %s (want reply 0x02, not allowed by ruleset)" % e)
        check(wait_until(lambda: any(r.get("result") == "denied" for r in client.access_records()), 5),
              "the client's line: %r" % client.access_records())
        check(wait_until(lambda: any(r.get("result") == "denied" for r in polling_records(gw)), 5),
              "the gateway's line: %r" % gw.access_records())
        text = client.stderr_text()
        check("the gateway refused" in text and "failed at the" not in text,
              "a refusal is the gateway's answer, not a failed transport:\n" + text)
        log("403 from the gateway: SOCKS5 reply 0x02, logged denied on both ends")
    echo.close()


def idle_deadline(binary, workdir):
    held = []

    def silent(c):
        held.append(c)
        c.recv(1)  # nothing comes: the gateway's idle deadline ends the session
    service = Service(silent)
    gw, client = start_pair(binary, workdir, gw_idle="2s")
    with running(gw), running(client):
        s = socks_to(client, service.port)
        t0 = time.monotonic()
        s.settimeout(20)
        try:
            data = s.recv(10)
        except ConnectionResetError:
            data = b""
        took = time.monotonic() - t0
        check(data == b"", "a silent session got %r" % data)
        check(1.5 < took < 8, "the silent session ended after %.1fs (gateway idle_timeout 2s)" % took)
        check(wait_until(lambda: any(r.get("detail") == "idle_timeout" for r in polling_records(gw)), 5),
              "the gateway's line: %r" % polling_records(gw))
        check(wait_until(lambda: len(client.access_records()) == 1, 5), "the client's line")
        log("a silent session ended %.1fs after its last byte, on both ends" % took)
        s.close()
    service.close()


def auto_falls_back(binary, workdir):
    echo = Service(sink)
    gw, client = start_pair(binary, workdir, transport="auto")
    with running(gw), running(client):
        for i in range(3):
            s = socks_to(client, echo.port)
            s.sendall(b"x" * (i + 1))
            s.shutdown(socket.SHUT_WR)
            want = hashlib.sha256(b"x" * (i + 1)).hexdigest().encode()
            check(recv_exact(s, len(want)) == want, "auto session %d" % i)
            s.close()
        text = client.stderr_text()
        check(text.count("failed at the upgrade hop") == 1 and "gateway reached by polling, direct" in text,
              "auto did not fall back to polling once and keep it:\n" + text)
        log("auto: the upgrade was refused, polling worked and was kept")
    echo.close()


def over_tls(binary, workdir):
    """The same transport to a TLS listener: verified against the CA, bytes and half-close intact."""
    sinks = Service(sink)
    gw, client = start_pair(binary, workdir, tls=True)
    with running(gw), running(client):
        check("tunnel: polling, direct to 127.0.0.1:%d, TLS for gw.test" % gw.port() in client.stderr_text(),
              "the client's tunnel:\n" + client.stderr_text())
        data = os.urandom(4 * MIB)
        s = socks_to(client, sinks.port)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        want = hashlib.sha256(data).hexdigest().encode()
        check(recv_exact(s, len(want)) == want, "4 MiB over TLS changed on the way")
        s.close()
        check(wait_until(lambda: any(r.get("bytes_up") == 4 * MIB for r in polling_records(gw)), 10),
              "the gateway's line: %r" % gw.access_records())
        log("polling over TLS: 4 MiB up, half-close, the digest came back")
    sinks.close()


def test(binary, workdir):
    run_parts(binary, workdir, [refused, idle_deadline, auto_falls_back, over_tls, bulk_and_half_close])


if __name__ == "__main__":
    main(test)
