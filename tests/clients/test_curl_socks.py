#!/usr/bin/env python3
"""curl as a real SOCKS client: --socks5, --socks5-hostname, --socks4 and --socks4a through edgerelay
to a local HTTP server; each downloads a 1 MiB file intact, and each session leaves one access-log
line with result ok, the right protocol and target, and bytes_down >= the file size."""

import os

import gateway as gw
from gateway import check


def run_case(g, server, workdir, flag, url_host, protocol, expected_target, index):
    out = os.path.join(workdir, "download-%d.bin" % index)
    before = len(g.stdout_lines())
    r = gw.curl([flag, "127.0.0.1:%d" % g.port(), "-o", out, "-w", "%{http_code}", server.url(url_host)])
    check(r.returncode == 0, "curl %s exited %d: %s" % (flag, r.returncode, r.stderr))
    check(r.stdout.strip() == "200", "curl %s: HTTP status %r" % (flag, r.stdout))
    check(os.path.getsize(out) == server.size, "curl %s: downloaded %d bytes, expected %d"
          % (flag, os.path.getsize(out), server.size))
    check(gw.sha256_file(out) == server.sha256, "curl %s: sha256 of the download differs" % flag)

    rec = g.one_new_record(before, "curl %s" % flag)
    check(rec["result"] == "ok", "curl %s: result %r, expected ok: %r" % (flag, rec["result"], rec))
    check(rec["protocol"] == protocol, "curl %s: protocol %r, expected %r" % (flag, rec["protocol"], protocol))
    check(rec["target"] == expected_target, "curl %s: target %r, expected %r" % (flag, rec["target"], expected_target))
    check(rec["dialled"] == "127.0.0.1:%d" % server.port, "curl %s: dialled %r, expected 127.0.0.1:%d"
          % (flag, rec["dialled"], server.port))
    check(rec["listener"] == "test", "curl %s: listener %r" % (flag, rec["listener"]))
    check(rec["rule"] == "loopback", "curl %s: rule %r, expected loopback" % (flag, rec["rule"]))
    check(rec["client"].startswith("127.0.0.1:"), "curl %s: client %r" % (flag, rec["client"]))
    check(rec["user"] == "", "curl %s: user %r for an anonymous session" % (flag, rec["user"]))
    check(rec["bytes_down"] >= server.size, "curl %s: bytes_down %d < %d" % (flag, rec["bytes_down"], server.size))
    check(rec["bytes_up"] > 0, "curl %s: bytes_up %d (the GET request went up)" % (flag, rec["bytes_up"]))
    gw.log("ok:", flag, rec)


def test(binary, workdir):
    server = gw.FileServer(os.path.join(workdir, "www"))
    g = gw.Gateway(binary, gw.config_yaml(), workdir)
    with gw.running(g, server):
        g.start()
        cases = [
            ("--socks5", "127.0.0.1", "socks5", "127.0.0.1:%d" % server.port),
            ("--socks5-hostname", "localhost", "socks5", "localhost:%d" % server.port),
            ("--socks4", "127.0.0.1", "socks4", "127.0.0.1:%d" % server.port),
            ("--socks4a", "localhost", "socks4", "localhost:%d" % server.port),
        ]
        for i, (flag, host, protocol, target) in enumerate(cases):
            run_case(g, server, workdir, flag, host, protocol, target, i)
        check(g.alive(), "edgerelay died during the downloads")
        g.stop_ok()
        check(len(g.access_records()) == len(cases), "expected %d access-log lines in all, got:\n%s"
              % (len(cases), g.stdout_text()))


if __name__ == "__main__":
    gw.main(test)
