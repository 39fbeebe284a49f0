#!/usr/bin/env python3
"""Failed-login throttling as an operator and a client see it, with the real binary and RFC 1929:
- five wrong passwords from 127.0.0.2 are each verified and logged bad_credentials;
- the sixth and later attempts from there get the same failure reply (status 1), about a second
  late, logged bad_credentials with detail auth_throttled; even the right password is refused there;
- the operator log says "auth: source 127.0.0.2 throttled after 5 failures" once for the period;
- alice from 127.0.0.3 logs in at once and her tunnel carries bytes;
- neither password appears in the output."""

import secrets
import socket
import time

import gateway as gw
from gateway import check

PASSWORD = "Pw-" + secrets.token_hex(12)
WRONG = "Wrong-" + secrets.token_hex(12)
THROTTLED_LINE = r"auth: source 127\.0\.0\.2 throttled after 5 failures"


def attempt(g, source, password, echo):
    """One SOCKS5 login (and CONNECT to the echo server) from `source`; returns (auth status or 0, seconds)."""
    s = socket.create_connection(("127.0.0.1", g.port()), timeout=10, source_address=(source, 0))
    start = time.monotonic()
    try:
        gw.socks5_handshake(s, "127.0.0.1", echo.port, user="alice", password=password)
        s.sendall(b"ping")
        check(gw.recv_exact(s, 4) == b"ping", "tunnel from %s did not echo" % source)
        return 0, time.monotonic() - start
    except gw.SocksError as e:
        check(e.code == ("auth", 1), "login from %s: %s, expected auth status 1" % (source, e))
        return 1, time.monotonic() - start
    finally:
        s.close()


def test(binary, workdir):
    pw_hash = gw.make_password_hash(binary, PASSWORD)
    echo = gw.EchoServer()
    text = gw.config_yaml(users='  - {name: alice, password: "%s"}\n' % pw_hash, auth="password",
                          protocols="[socks5]",
                          limits={"auth_failures": "{max: 5, window: 60s, backoff: 30s}"})
    g = gw.Gateway(binary, text, workdir, workers=2)
    with gw.running(g, echo):
        g.start()
        for i in range(5):
            before = len(g.stdout_lines())
            status, _ = attempt(g, "127.0.0.2", WRONG, echo)
            check(status == 1, "wrong password %d got in" % (i + 1))
            rec = g.one_new_record(before, "wrong password %d" % (i + 1), settle=0)
            check(rec["result"] == "bad_credentials" and "detail" not in rec, "failure %d logged as %r" % (i + 1, rec))
        check(g.wait_stderr(THROTTLED_LINE, timeout=5), "no throttling line after five failures:\n" + g.stderr_text())

        for password in (WRONG, PASSWORD, WRONG):
            before = len(g.stdout_lines())
            status, took = attempt(g, "127.0.0.2", password, echo)
            check(status == 1, "a throttled source logged in")
            check(took >= 0.9, "a throttled refusal came after %.3f s, expected about 1 s" % took)
            rec = g.one_new_record(before, "throttled", settle=0)
            check(rec["result"] == "bad_credentials" and rec.get("detail") == "auth_throttled",
                  "throttled attempt logged as %r" % rec)
            check(rec["client"].startswith("127.0.0.2:"), "throttled attempt client %r" % rec["client"])

        before = len(g.stdout_lines())
        status, took = attempt(g, "127.0.0.3", PASSWORD, echo)
        check(status == 0, "alice from another source was refused")
        check(took < 0.9, "alice from another source waited %.3f s" % took)
        rec = g.one_new_record(before, "other source", settle=0.3)
        check(rec["result"] == "ok" and rec["user"] == "alice", "other source logged as %r" % rec)

        throttled = [l for l in g.stderr_lines() if "throttled after" in l]
        check(len(throttled) == 1, "expected one throttling line for the period, got %r" % throttled)
        g.stop_ok()
        for pw in (PASSWORD, WRONG):
            check(pw not in g.stdout_text() and pw not in g.stderr_text(), "a password appears in the output")


if __name__ == "__main__":
    gw.main(test)
