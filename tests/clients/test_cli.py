#!/usr/bin/env python3
"""Command line (docs/config.md): `check` on the shipped example exits 0 and prints OK; a config
with an unknown key or a bad value makes `check` exit 1 with file:line:col; `edgerelay --config bad`
refuses to start (exit 1) naming file:line:col; a second YAML document, an empty `users`, `from` or
`to` list and an over-long duration (in limits or a health check) are such errors too; a FIFO, a
device and an oversized file are refused without blocking; `check` warns about an open proxy;
`--version` and `--help` exit 0; `passwd` salts."""

import os
import re
import subprocess
import sys

import gateway as gw
from gateway import check

UNKNOWN_KEY = """listeners:
  - name: test
    bind: "127.0.0.1:0"
    protocols: [socks5]
    bnd: oops
rules:
  - {name: all, action: allow}
"""

BAD_DURATION = """listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
rules:
  - {name: all, action: allow}
limits:
  handshake_timeout: 10x
"""

SECOND_DOCUMENT = """listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
rules:
  - {name: all, action: allow}
---
rules: []
"""

# A rule whose `users`, `from` or `to` (the %s) is an empty list: it reads as "nothing" yet would
# match everything, so it is refused at the list's line and column (the same for all three).
EMPTY_LIST = """listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
rules:
  - {name: all, action: allow, %s: []}
"""

LONG_HEALTH_INTERVAL = """listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
backends:
  - {name: db, host: 127.0.0.1, portbase: 5000, health_check: {interval: 1441m, timeout: 1s}}
rules:
  - {name: all, action: allow}
"""

LONG_DURATION = """listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}
rules:
  - {name: all, action: allow}
limits: {idle_timeout: 1441m}
"""

OPEN_PROXY = """listeners:
  - {name: edge, bind: "0.0.0.0:0", protocols: [socks5, http]}
rules:
  - {name: world, action: allow}
"""


def expect_diagnostic(text, path, line, col, words, what):
    rx = re.compile(r"^%s:%d:%d: (?!warning)(.*)$" % (re.escape(path), line, col), re.M)
    m = rx.search(text)
    check(m is not None, "%s: no error '%s:%d:%d: ...' in:\n%s" % (what, path, line, col, text))
    for w in words:
        check(w in m.group(1), "%s: the error does not mention %r: %r" % (what, w, m.group(0)))


def start_refused(binary, path):
    """Starts edgerelay on a config it must refuse: it exits 1 within 10 s, opens no listener."""
    try:
        r = gw.run([binary, "--config", path, "--workers", "1"], timeout=10)
    except subprocess.TimeoutExpired:
        raise gw.TestFailure("edgerelay --config %s did not exit within 10 s" % path)
    check(r.returncode == 1, "edgerelay --config %s exited %d, expected 1:\n%s" % (path, r.returncode, r.stderr))
    check("listening on" not in r.stderr, "edgerelay opened a listener with %s:\n%s" % (path, r.stderr))
    return r


def test(binary, workdir):
    example = sys.argv[2] if len(sys.argv) > 2 else None
    check(example and os.path.isfile(example), "the example config path is missing: %r" % example)

    r = gw.run([binary, "check", "--config", example], timeout=30)
    check(r.returncode == 0, "check of the shipped example exited %d:\n%s%s" % (r.returncode, r.stdout, r.stderr))
    check(r.stdout.rstrip().splitlines()[-1:] == ["OK"], "check of the example does not end with OK:\n" + r.stdout)
    listed = len(re.findall(r"^listener \S+:", r.stdout, re.M))
    check(listed > 0 and re.search(r"\b%d listeners?\b" % listed, r.stdout) is not None,
          "check summary does not count the %d listeners it lists:\n" % listed + r.stdout)

    for name, text, line, col, words in (("unknown-key.yaml", UNKNOWN_KEY, 5, 5, ["unknown key", "bnd"]),
                                         ("bad-duration.yaml", BAD_DURATION, 6, 22, ["10x", "handshake_timeout"])):
        path = os.path.join(workdir, name)
        with open(path, "w") as f:
            f.write(text)
        r = gw.run([binary, "check", "--config", path], timeout=30)
        check(r.returncode == 1, "check of %s exited %d, expected 1:\n%s%s" % (name, r.returncode, r.stdout, r.stderr))
        check(r.stdout.strip() != "OK" and "\nOK" not in r.stdout, "check of %s printed OK" % name)
        expect_diagnostic(r.stdout + r.stderr, path, line, col, words, "check " + name)

        try:
            r = gw.run([binary, "--config", path, "--workers", "1"], timeout=10)
        except subprocess.TimeoutExpired:
            raise gw.TestFailure("edgerelay --config %s did not exit within 10 s: it started on a bad config" % name)
        check(r.returncode == 1, "edgerelay --config %s exited %d, expected 1:\n%s" % (name, r.returncode, r.stderr))
        expect_diagnostic(r.stderr, path, line, col, words, "run " + name)
        check("listening on" not in r.stderr, "edgerelay opened a listener with a bad config:\n" + r.stderr)
        check(r.stdout == "", "edgerelay printed on stdout with a bad config: %r" % r.stdout)

    for name, text, line, col, words in (("second-document.yaml", SECOND_DOCUMENT, 5, 1, ["second YAML document"]),
                                         ("empty-users.yaml", EMPTY_LIST % "users", 4, 39, ["empty list", "users"]),
                                         ("empty-from.yaml", EMPTY_LIST % "from", 4, 38, ["empty list", "from"]),
                                         ("empty-to.yaml", EMPTY_LIST % "to", 4, 36, ["empty list", "to"]),
                                         ("long-health-interval.yaml", LONG_HEALTH_INTERVAL, 4, 74,
                                          ["1441m", "at most"]),
                                         ("long-duration.yaml", LONG_DURATION, 5, 24, ["1441m", "at most"])):
        path = os.path.join(workdir, name)
        with open(path, "w") as f:
            f.write(text)
        r = gw.run([binary, "check", "--config", path], timeout=30)
        check(r.returncode == 1, "check of %s exited %d, expected 1:\n%s%s" % (name, r.returncode, r.stdout, r.stderr))
        expect_diagnostic(r.stdout + r.stderr, path, line, col, words, "check " + name)
        r = start_refused(binary, path)
        expect_diagnostic(r.stderr, path, line, col, words, "run " + name)

    # Not a regular file, or too big: refused by name, and a FIFO nobody writes must not block.
    fifo = os.path.join(workdir, "fifo.yaml")
    os.mkfifo(fifo)
    big = os.path.join(workdir, "big.yaml")
    with open(big, "w") as f:
        f.write(OPEN_PROXY)
    os.truncate(big, 16 * 1024 * 1024 + 1)
    for path, words in ((fifo, "is a FIFO"), ("/dev/zero", "is a device"), (big, "is 16777217 bytes, over the limit")):
        try:
            r = gw.run([binary, "check", "--config", path], timeout=10)
        except subprocess.TimeoutExpired:
            raise gw.TestFailure("check --config %s did not exit within 10 s" % path)
        check(r.returncode == 1, "check of %s exited %d, expected 1" % (path, r.returncode))
        check(("%s: %s" % (path, words)) in r.stderr, "check of %s does not say %r:\n%s" % (path, words, r.stderr))
        r = start_refused(binary, path)
        check(("%s: %s" % (path, words)) in r.stderr, "edgerelay --config %s does not say %r:\n%s"
              % (path, words, r.stderr))

    path = os.path.join(workdir, "open-proxy.yaml")
    with open(path, "w") as f:
        f.write(OPEN_PROXY)
    r = gw.run([binary, "check", "--config", path], timeout=30)
    check(r.returncode == 0, "check of an open proxy exited %d, expected 0 (a warning):\n%s" % (r.returncode, r.stderr))
    check(re.search(r"^%s:4:5: warning: rule 'world' makes listener 'edge' .* an open proxy" % re.escape(path),
                    r.stderr, re.M) is not None, "check does not warn about the open proxy:\n" + r.stderr)
    r = gw.run([binary, "check", "--config", example], timeout=30)
    check("open proxy" not in r.stderr, "the shipped example is reported as an open proxy:\n" + r.stderr)

    missing = os.path.join(workdir, "does-not-exist.yaml")
    r = gw.run([binary, "check", "--config", missing], timeout=30)
    check(r.returncode == 1, "check of a missing file exited %d, expected 1" % r.returncode)
    check(missing in r.stdout + r.stderr, "check of a missing file does not name it:\n" + r.stdout + r.stderr)

    r = gw.run([binary, "--version"], timeout=10)
    check(r.returncode == 0, "--version exited %d" % r.returncode)
    check(re.fullmatch(r"edgerelay \d+\.\d+\.\d+\S*", r.stdout.splitlines()[0]) is not None,
          "--version printed %r" % r.stdout)

    r = gw.run([binary, "--help"], timeout=10)
    check(r.returncode == 0, "--help exited %d" % r.returncode)
    check(r.stdout.startswith("usage: edgerelay"), "--help printed %r" % r.stdout[:200])
    for word in ("check", "explain", "passwd", "--config"):
        check(word in r.stdout, "--help does not mention %s" % word)

    r = gw.run([binary, "--no-such-option"], timeout=10)
    check(r.returncode == 2, "an unknown option exited %d, expected 2" % r.returncode)

    # `workers: auto` counts the CPUs the process may run on: confined to one, it runs one worker.
    allowed = sorted(os.sched_getaffinity(0))
    for cpus, label in ((set(allowed), "as started"), ({allowed[-1]}, "under taskset")):
        with gw.temp_dir() as d:
            g = gw.Gateway(binary, gw.config_yaml(), d, workers=None,
                           preexec_fn=lambda cpus=cpus: os.sched_setaffinity(0, cpus))
            g.start()
            try:
                counts = {m.group(4) for m in map(gw.LISTENING_RE.search, g.stderr_lines()) if m}
                check(counts == {str(len(cpus))}, "workers auto %s on %d CPU(s) started %s worker(s):\n%s"
                      % (label, len(cpus), sorted(counts), g.stderr_text()))
            finally:
                g.stop()

    h1 = gw.make_password_hash(binary, "same password")
    h2 = gw.make_password_hash(binary, "same password")
    check(h1 != h2, "edgerelay passwd printed the same hash twice: it is not salted")


if __name__ == "__main__":
    gw.main(test)
