#!/usr/bin/env python3
"""Debian's ncat as an HTTP CONNECT client (--proxy-type http): a stream of bytes through
edgerelay to a local echo server comes back intact; with auth, --proxy-auth is required."""

import os

from http_common import gw, http_config
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
    os.makedirs(os.path.join(workdir, "plain"))
    os.makedirs(os.path.join(workdir, "auth"))
    g = gw.Gateway(binary, http_config(), os.path.join(workdir, "plain"))
    try:
        g.start()
        r = ncat(g.port(), echo, payload)
        check(r.stdout == payload, "ncat echo: got %d of %d bytes back (rc %d, %s)"
              % (len(r.stdout), len(payload), r.returncode, r.stderr.decode(errors="replace")))
        gw.log("ok: ncat --proxy-type http,", len(payload), "bytes")
        check(g.stop(timeout=10) == 0, "edgerelay exit status after SIGTERM")
    except BaseException:
        g.dump()
        raise
    finally:
        g.kill()

    users = "  - {name: alice, password: \"%s\"}\n" % gw.make_password_hash(binary, "s3cret")
    g = gw.Gateway(binary, http_config(auth="password", users=users), os.path.join(workdir, "auth"))
    try:
        g.start()
        r = ncat(g.port(), echo, b"hello\n")
        check(r.returncode != 0 and r.stdout == b"", "ncat without --proxy-auth got through: %r" % r.stdout)
        r = ncat(g.port(), echo, b"hello\n", auth="alice:s3cret")
        check(r.stdout == b"hello\n", "ncat --proxy-auth: %r (%s)" % (r.stdout, r.stderr.decode(errors="replace")))
        gw.log("ok: ncat --proxy-auth")
        check(g.stop(timeout=10) == 0, "edgerelay exit status after SIGTERM")
    except BaseException:
        g.dump()
        raise
    finally:
        g.kill()
        echo.close()


if __name__ == "__main__":
    gw.main(test)
