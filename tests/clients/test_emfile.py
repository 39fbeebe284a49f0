#!/usr/bin/env python3
"""Accept under descriptor exhaustion: edgerelay runs with RLIMIT_NOFILE 64 (soft and hard, so it
cannot raise it); ~100 idle client connections make accept fail with EMFILE. The process must stay
alive, must not spin (CPU time over 2 s well under one CPU-second), must say so on stderr, and once
the clients close, a fresh SOCKS5 session through it must work."""

import resource
import socket
import time

import gateway as gw
from gateway import check

NOFILE = 64
CLIENTS = 100
CPU_BOUND = 0.5  # CPU-seconds over a 2 s window; a spinning accept loop burns ~2 (one per worker)


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def echo_through(g, echo, payload):
    s = gw.socks5_connect(("127.0.0.1", g.port()), "127.0.0.1", echo.port, timeout=3)
    try:
        s.settimeout(3)
        s.sendall(payload)
        got = gw.recv_exact(s, len(payload))
        check(got == payload, "echo through the gateway returned %r" % got)
    finally:
        s.close()


def test(binary, workdir):
    echo = gw.EchoServer()
    # A long handshake timeout keeps the accepted, silent clients holding their descriptors.
    cfg = gw.config_yaml(limits={"handshake_timeout": "60s"})
    g = gw.Gateway(binary, cfg, workdir, preexec_fn=low_nofile)
    clients = []
    try:
        g.start()
        check(g.wait_stderr(r"open descriptor limit: %d\b" % NOFILE, timeout=2) is not None,
              "edgerelay did not report the descriptor limit %d:\n%s" % (NOFILE, g.stderr_text()))
        echo_through(g, echo, b"before the flood")

        for i in range(CLIENTS):
            try:
                clients.append(socket.create_connection(("127.0.0.1", g.port()), timeout=2))
            except OSError as e:
                raise gw.TestFailure("client connection %d failed: %s (the backlog should hold it)" % (i, e))
        gw.log("%d idle client connections open" % len(clients))

        line = g.wait_stderr(r"accept failed", timeout=5)
        check(line is not None, "no accept failure on stderr with %d connections and %d descriptors:\n%s"
              % (CLIENTS, NOFILE, g.stderr_text()))
        gw.log("stderr:", line)
        check("Too many open files" in line or "EMFILE" in line or "descriptor" in line,
              "the accept failure does not name the cause: %r" % line)
        check(g.wait_stderr(r"back(ing)?[ -]?off", timeout=1) is not None,
              "stderr does not mention the accept back-off:\n%s" % g.stderr_text())

        check(g.alive(), "edgerelay died on EMFILE:\n" + g.stderr_text())
        cpu0 = gw.cpu_seconds(g.pid)
        t0 = time.monotonic()
        time.sleep(2.0)
        cpu1 = gw.cpu_seconds(g.pid)
        window = time.monotonic() - t0
        used = cpu1 - cpu0
        gw.log("CPU time over %.2f s while out of descriptors: %.3f s" % (window, used))
        check(g.alive(), "edgerelay died while out of descriptors:\n" + g.stderr_text())
        check(used < CPU_BOUND, "edgerelay used %.3f CPU-seconds in %.2f s while out of descriptors "
              "(bound %.1f): the accept loop spins" % (used, window, CPU_BOUND))
        warnings = [l for l in g.stderr_lines() if "accept failed" in l]
        check(len(warnings) <= 2 * 2 * 5, "accept failure logged %d times in a few seconds: the warning is not "
              "rate-limited" % len(warnings))

        for c in clients:
            c.close()
        clients = []

        # The backlog drains; a fresh session must then work (bounded retries).
        deadline = time.monotonic() + 10
        last_error = None
        ok = False
        attempts = 0
        while time.monotonic() < deadline and attempts < 50:
            attempts += 1
            try:
                echo_through(g, echo, b"after the flood")
                ok = True
                break
            except (OSError, gw.SocksError) as e:
                last_error = e
                time.sleep(0.2)
        check(ok, "no SOCKS5 session worked within 10 s after the clients closed: %r" % last_error)
        gw.log("fresh session worked after %d attempt(s)" % attempts)
        check(g.alive(), "edgerelay died")
        g.stop_ok(check_log=True)
        oks = [r for r in g.access_records() if r["result"] == "ok"]
        check(len(oks) == 2, "expected 2 ok sessions (before and after the flood), got %r" % oks)
    except BaseException:
        g.dump()
        raise
    finally:
        for c in clients:
            c.close()
        g.kill()
        echo.close()


if __name__ == "__main__":
    gw.main(test)
