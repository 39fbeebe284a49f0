#!/usr/bin/env python3
"""`edgerelay --config FILE --takeover`: an upgrade that drops no connection (docs/upgrade.md).

A. Four client threads make 10,000 SOCKS5 connections in all to a local echo server, each sending
   and reading back bytes, while a second edgerelay takes the listeners over from the first: not
   one connection is refused or reset. Three tunnels opened before the takeover keep carrying bytes
   both ways through the old process after it, until they close; the old process then exits 0 on
   its own. The new process has the same ports: the SOCKS listener, the udp_bind socket and the
   admin listener, which answers /readyz 200.
B. --takeover with no running instance fails at once with a clear message and exit 1; so does a
   stale socket file left by an instance that died.
C. A running instance refuses a hello of another protocol version and a garbled message, and keeps
   serving."""

import http.client
import os
import re
import socket
import stat
import struct
import threading
import time

import gateway as gw
from gateway import check

ATTEMPTS = 10000
THREADS = 4
ADMIN_RE = r" admin: listening on 127\.0\.0\.1:(\d+)"
UDP_RE = r" listener: door: 602SQL discovery and breaks on udp 127\.0\.0\.1:(\d+)"


def config(workdir, dummy_port):
    return (
        "listeners:\n"
        '  - {name: test, bind: "127.0.0.1:0", protocols: [socks5], auth: none}\n'
        '  - {name: door, bind: "127.0.0.1:0", forward: sql, udp_bind: "127.0.0.1:0"}\n'
        "backends:\n"
        "  - {name: sql, host: 127.0.0.1, portbase: %d, kind: sql602}\n"
        "rules:\n"
        '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8", "backend:sql"]}\n'
        "limits: {handshake_timeout: 5s, connect_timeout: 2s, idle_timeout: 60s, shutdown_grace: 30s}\n"
        'admin: {bind: "127.0.0.1:0"}\n'
        "takeover_socket: %s\n"
        "log: {level: info, access: off}\n" % (dummy_port, os.path.join(workdir, "takeover.sock")))


def wrapper(binary, workdir):
    """The binary with --takeover appended (the Gateway helper builds the rest of the command)."""
    path = os.path.join(workdir, "edgerelay-takeover")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec "%s" "$@" --takeover\n' % binary)
    os.chmod(path, 0o755)
    return path


def port_of(g, pattern):
    line = g.wait_stderr(pattern, timeout=5)
    check(line is not None, "no line %r:\n%s" % (pattern, g.stderr_text()))
    return int(re.search(pattern, line).group(1))


def roundtrip(s, payload):
    s.sendall(payload)
    got = gw.recv_exact(s, len(payload))
    check(got == payload, "the tunnel returned %r for %r" % (got[:32], payload[:32]))


class Hammer:
    """THREADS threads sharing ATTEMPTS connections, each a SOCKS5 CONNECT and an echoed payload."""

    def __init__(self, proxy, echo_port):
        self.proxy, self.echo_port = proxy, echo_port
        self.lock = threading.Lock()
        self.started = 0
        self.done = 0
        self.failures = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(THREADS)]

    def _take(self):
        with self.lock:
            if self.started >= ATTEMPTS:
                return None
            self.started += 1
            return self.started

    def _run(self, index):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            n = self._take()
            if n is None:
                return
            payload = b"%d:%d;" % (index, n) * 4
            try:
                s = gw.socks5_connect(self.proxy, "127.0.0.1", self.echo_port, timeout=10)
                try:
                    s.sendall(payload)
                    got = gw.recv_exact(s, len(payload))
                    if got != payload:
                        raise RuntimeError("echoed %r" % got)
                finally:
                    s.close()
            except Exception as e:  # refused, reset, a SOCKS failure: all count
                with self.lock:
                    self.failures.append("attempt %d: %s: %s" % (n, type(e).__name__, e))
            with self.lock:
                self.done += 1

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(120)


def readyz(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/readyz")
        return c.getresponse().status
    finally:
        c.close()


def upgrade_drops_nothing(binary, workdir, echo):
    dummy = socket.socket()
    dummy.bind(("127.0.0.1", 0))  # a portbase nobody listens on: the backend is never dialled here
    old = gw.Gateway(binary, config(workdir, dummy.getsockname()[1]), workdir, workers=2)
    new = gw.Gateway(wrapper(binary, workdir), config(workdir, dummy.getsockname()[1]), workdir, workers=3)
    with gw.running(old), gw.running(new):
        old.start(listeners=("test", "door"))
        admin, udp = port_of(old, ADMIN_RE), port_of(old, UDP_RE)
        sock_path = os.path.join(workdir, "takeover.sock")
        mode = stat.S_IMODE(os.stat(sock_path).st_mode)
        check(mode == 0o600, "the takeover socket has mode %o, expected 600" % mode)
        proxy = old.address("test")
        tunnels = [gw.socks5_connect(proxy, "127.0.0.1", echo.port, timeout=10) for _ in range(3)]
        for i, t in enumerate(tunnels):
            roundtrip(t, b"before %d" % i)

        hammer = Hammer(proxy, echo.port)
        started = time.monotonic()
        hammer.start()
        check(gw.wait_until(lambda: hammer.done >= ATTEMPTS // 5, 60), "the clients did not get going")
        new.start(listeners=("test", "door"))
        at_takeover = hammer.done
        hammer.join()
        took = time.monotonic() - started
        gw.log("%d attempts in %.1f s, %d before the takeover, %d failed"
               % (hammer.done, took, at_takeover, len(hammer.failures)))
        check(hammer.done == ATTEMPTS, "only %d of %d attempts ran" % (hammer.done, ATTEMPTS))
        check(not hammer.failures, "%d of %d connections failed through the takeover, first: %s"
              % (len(hammer.failures), ATTEMPTS, hammer.failures[:5]))
        check(at_takeover < ATTEMPTS, "the takeover came after the last attempt: nothing was tested")

        check(new.address("test") == proxy, "the new process listens on %r, not %r" % (new.address("test"), proxy))
        check(port_of(new, UDP_RE) == udp, "the udp_bind socket was not taken over")
        check(port_of(new, ADMIN_RE) == admin, "the admin listener was not taken over")
        check(new.wait_stderr(r"listener: door: udp_bind taken over", timeout=5) is not None,
              "the udp_bind socket was bound anew:\n" + new.stderr_text())
        check(old.wait_stderr(r"takeover: handed over to edgerelay", timeout=5) is not None,
              "the old process did not hand over:\n" + old.stderr_text())
        check(readyz(admin) == 200, "/readyz of the new process is not 200")

        # The old process drains: its tunnels go on both ways, and it stays until they end.
        time.sleep(0.5)
        check(old.alive(), "the old process exited with tunnels open:\n" + old.stderr_text())
        for i, t in enumerate(tunnels):
            roundtrip(t, b"after the takeover %d" % i * 100)
        for t in tunnels:
            t.close()
        status = old.wait_exit(15)
        check(status == 0, "the old process exit status %r after its tunnels closed, expected 0" % status)
        check(os.path.exists(sock_path), "the old process removed the new one's takeover socket")
        # And the new process serves and can itself be taken over later (its socket is live).
        t = gw.socks5_connect(proxy, "127.0.0.1", echo.port)
        roundtrip(t, b"after the old one left")
        t.close()
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(sock_path)
        probe.close()
        new.stop_ok()
        check(not os.path.exists(sock_path), "the takeover socket was left behind after a plain stop")
    dummy.close()


def no_running_instance(binary, workdir):
    path = os.path.join(workdir, "edgerelay.yaml")
    with open(path, "w") as f:
        f.write(config(workdir, 9))
    started = time.monotonic()
    r = gw.run([binary, "--config", path, "--takeover"], timeout=20)
    check(r.returncode == 1, "--takeover without an instance exited %d:\n%s" % (r.returncode, r.stderr))
    check("takeover: no running instance" in r.stderr and "does not exist" in r.stderr,
          "unclear error: %r" % r.stderr)
    check(time.monotonic() - started < 10, "--takeover without an instance took too long")
    # A socket file whose listener died: connect is refused.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.path.join(workdir, "takeover.sock"))
    stale.close()
    r = gw.run([binary, "--config", path, "--takeover"], timeout=20)
    check(r.returncode == 1 and "nothing listens on" in r.stderr, "a stale socket: %d %r" % (r.returncode, r.stderr))
    r = gw.run([binary, "--takeover"], timeout=20)
    check(r.returncode == 2 and "--takeover needs --config" in r.stderr, "no config: %d %r" % (r.returncode, r.stderr))


def frame(kind, payload=b""):
    return struct.pack(">IB", len(payload) + 1, kind) + payload


def read_frame(s):
    head = gw.recv_exact(s, 5)
    length, kind = struct.unpack(">IB", head)
    return kind, gw.recv_exact(s, length - 1)


def bad_handovers_keep_serving(binary, workdir, echo):
    g = gw.Gateway(binary, config(workdir, 9), workdir)
    with gw.running(g):
        g.start(listeners=("test", "door"))
        sock_path = os.path.join(workdir, "takeover.sock")
        # Another protocol version: a refusal saying so.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(frame(1, struct.pack(">HH", 99, 3) + b"9.9"))
        kind, payload = read_frame(s)
        check(kind == 6 and b"protocol 99" in payload, "a foreign version got %r %r" % (kind, payload))
        s.close()
        # Garbage: the connection closes, nothing else happens.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(b"\x00\x00\x00\x01\x63")
        check(s.recv(16) == b"", "a garbled hello was answered")
        s.close()
        check(g.wait_stderr(r"takeover: a bad message from the new process: a frame of unknown type 99; still serving",
                            timeout=5) is not None, "the garbled hello was not logged:\n" + g.stderr_text())
        t = gw.socks5_connect(g.address("test"), "127.0.0.1", echo.port)
        roundtrip(t, b"still serving")
        t.close()
        g.stop_ok()


def test(binary, workdir):
    echo = gw.EchoServer()
    try:
        for part in (lambda d: upgrade_drops_nothing(binary, d, echo), lambda d: no_running_instance(binary, d),
                     lambda d: bad_handovers_keep_serving(binary, d, echo)):
            d = os.path.join(workdir, "part%d" % len(os.listdir(workdir)))
            os.makedirs(d)
            part(d)
    finally:
        echo.close()


if __name__ == "__main__":
    gw.main(test)
