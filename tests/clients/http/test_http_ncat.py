#!/usr/bin/env python3
"""Debian's ncat as an HTTP CONNECT client (--proxy-type http): a stream of bytes through
edgerelay to a local echo server comes back intact; with auth, --proxy-auth is required."""

from http_common import gw, http_gateway, alice_gateway
from gateway import check


def ncat(proxy_port, echo, payload, auth=None):
    cmd = ["ncat", "--proxy", "127.0.0.1:%d" % proxy_port, "--proxy-type", "http", "-w", "10", "-i", "3"]
    if auth:
        cmd += ["--proxy-auth", auth]
    cmd += [echo.host, str(echo.port)]
    gw.log("running", " ".join(cmd))
    import subprocess
    return subprocess.run(cmd, input=payload, capture_output=True, timeout=60, env=gw.clean_env())


def test(binary, workdir):
    echo = gw.EchoServer()
    payload = (b"".join(b"line %06d through ncat and edgerelay\n" % i for i in range(20000)))
    g = http_gateway(binary, workdir, "plain")
    with gw.running(g):
        g.start()
        r = ncat(g.port(), echo, payload)
        check(r.stdout == payload, "ncat echo: got %d of %d bytes back (rc %d, %s)"
              % (len(r.stdout), len(payload), r.returncode, r.stderr.decode(errors="replace")))
        gw.log("ok: ncat --proxy-type http,", len(payload), "bytes")
        g.stop_ok()

    g = alice_gateway(binary, workdir)
    with gw.running(g, echo):
        g.start()
        r = ncat(g.port(), echo, b"hello\n")
        check(r.returncode != 0 and r.stdout == b"", "ncat without --proxy-auth got through: %r" % r.stdout)
        r = ncat(g.port(), echo, b"hello\n", auth="alice:s3cret")
        check(r.stdout == b"hello\n", "ncat --proxy-auth: %r (%s)" % (r.stdout, r.stderr.decode(errors="replace")))
        gw.log("ok: ncat --proxy-auth")
        g.stop_ok()


if __name__ == "__main__":
    gw.main(test)
