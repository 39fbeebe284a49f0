#!/usr/bin/env python3
"""SIGHUP reload smoke test with curl: a rule denies 127.0.0.2; the file is rewritten to allow it and
SIGHUP makes the next curl to a server on 127.0.0.2 succeed; then a broken file + SIGHUP is logged
with file:line:col and the gateway keeps the last good config (the next curl still succeeds)."""

import os
import re
import signal

import gateway as gw
from gateway import check

LIMITS = {"handshake_timeout": "2s", "connect_timeout": "2s", "idle_timeout": "30s", "shutdown_grace": "3s"}
DENY_TWO = ['{name: no-two, action: deny, to: ["127.0.0.2"]}',
            '{name: loopback, action: allow, from: ["127.0.0.0/8", "::1"], to: ["127.0.0.0/8", "[::1]"]}']
ALLOW_ALL = ['{name: loopback-v2, action: allow, from: ["127.0.0.0/8", "::1"], to: ["127.0.0.0/8", "[::1]"]}']

# Line 6, column 3: an unknown top-level key.
BROKEN = """listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4], auth: none}
rules:
  - {name: loopback-v3, action: allow}
log: {level: info, access: json}
  bogus_key: 1
"""


def fetch(g, server, workdir, what):
    out = os.path.join(workdir, "out.bin")
    if os.path.exists(out):
        os.unlink(out)
    before = len(g.stdout_lines())
    r = gw.curl(["--socks5", "127.0.0.1:%d" % g.port(), "-o", out, server.url()])
    rec = g.one_new_record(before, what)
    ok = r.returncode == 0 and os.path.exists(out) and gw.sha256_file(out) == server.sha256
    return r, ok, rec


def test(binary, workdir):
    server = gw.FileServer(os.path.join(workdir, "www"), host="127.0.0.2")
    check(server.host == "127.0.0.2", "the file server is not on 127.0.0.2")
    g = gw.Gateway(binary, gw.config_yaml(rules=DENY_TWO), workdir)
    with gw.running(g, server):
        g.start()

        r, ok, rec = fetch(g, server, workdir, "before reload")
        check(not ok and r.returncode != 0, "curl to 127.0.0.2 succeeded while a rule denies it")
        check(rec["result"] == "denied" and rec["rule"] == "no-two", "before reload: logged %r" % rec)

        g.write_config(gw.config_yaml(rules=ALLOW_ALL))
        mark = len(g.stderr_lines())
        g.signal(signal.SIGHUP)
        line = g.wait_stderr(r"reload: ok: generation 2\b", timeout=10, start=mark)
        check(line is not None, "no successful reload on stderr after SIGHUP:\n" + g.stderr_text())

        r, ok, rec = fetch(g, server, workdir, "after reload")
        check(ok, "curl to 127.0.0.2 failed after the reload allowed it (exit %d): %s" % (r.returncode, r.stderr))
        check(rec["result"] == "ok" and rec["rule"] == "loopback-v2", "after reload: logged %r" % rec)
        check(rec["bytes_down"] >= server.size, "after reload: bytes_down %d" % rec["bytes_down"])

        g.write_config(BROKEN)
        mark = len(g.stderr_lines())
        g.signal(signal.SIGHUP)
        failed = g.wait_stderr(r"reload: failed", timeout=10, start=mark)
        check(failed is not None, "no failed reload on stderr after SIGHUP with a broken file:\n" + g.stderr_text())
        errors = g.stderr_lines()[mark:]
        rx = re.compile(r"%s:6:3: " % re.escape(g.config_path))
        check(any(rx.search(l) for l in errors), "the reload error does not name %s:6:3:\n%s"
              % (g.config_path, "\n".join(errors)))
        check(g.alive(), "edgerelay exited after a broken reload:\n" + g.stderr_text())

        r, ok, rec = fetch(g, server, workdir, "after broken reload")
        check(ok, "curl failed after a broken reload (exit %d): %s" % (r.returncode, r.stderr))
        check(rec["result"] == "ok" and rec["rule"] == "loopback-v2",
              "after a broken reload the old config should still apply; logged %r" % rec)

        g.stop_ok(check_log=True)


if __name__ == "__main__":
    gw.main(test)
