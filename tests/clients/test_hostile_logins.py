#!/usr/bin/env python3
"""Hostile logins against the real binary (RFC 1929, exact bytes):
- a stored hash of 10,000,000 PBKDF2 iterations (2.5 s a login) is refused by `edgerelay check`
  and at start, at its file:line:column, and the gateway never opens a listener; 1,000,001 is
  refused too, and 1,000,000 (the bound) is accepted;
- an unknown user name costs what a wrong password costs: the medians of interleaved attempts
  measured in the same run are within 0.5x-2x of each other, so the timing does not tell which
  names exist;
- password checks run off the worker: with one worker and the costliest hash allowed, four
  clients failing logins without pause leave an established tunnel's echo round trip on that
  worker far below one verification (p90 under a tenth, the worst under half)."""

import base64
import hashlib
import os
import re
import socket
import statistics
import subprocess
import threading
import time

import gateway as gw
from gateway import check

PASSWORD = "right-horse-battery"

CONFIG = """\
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5], auth: password}
users:
  - {name: alice, password: "%(hash)s"}
rules:
  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}
limits: {handshake_timeout: 5s, connect_timeout: 2s, idle_timeout: 60s, shutdown_grace: 2s,
         auth_failures: {max: 1000000, window: 60s, backoff: 1s, user_delay: 0ms}}
log: {level: info, access: json}
"""


def pbkdf2_hash(password, iterations, key=None):
    """A hash in the stored format; `key` None: the real PBKDF2 key (slow for big counts)."""
    salt = os.urandom(16)
    if key is None:
        key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "pbkdf2-sha256$%d$%s$%s" % (iterations, base64.b64encode(salt).decode(), base64.b64encode(key).decode())


def iteration_bound(binary, workdir):
    for iterations in (10_000_000, 1_000_001):
        # The key is never computed: a hash outside the bound must be refused before it is run.
        text = CONFIG % {"hash": pbkdf2_hash(PASSWORD, iterations, key=os.urandom(32))}
        path = os.path.join(workdir, "iterations-%d.yaml" % iterations)
        with open(path, "w") as f:
            f.write(text)
        column = text.splitlines()[3].index('"') + 1
        want = re.compile(r"^%s:4:%d: password of user 'alice' .*iteration.*1000000" % (re.escape(path), column), re.M)
        r = gw.run([binary, "check", "--config", path], timeout=10)
        check(r.returncode == 1, "check with %d iterations exited %d:\n%s%s" % (iterations, r.returncode, r.stdout,
                                                                               r.stderr))
        check(want.search(r.stdout + r.stderr), "check with %d iterations does not say so at %s:4:%d:\n%s%s"
              % (iterations, path, column, r.stdout, r.stderr))
        started = time.monotonic()
        try:
            r = gw.run([binary, "--config", path, "--workers", "1"], timeout=10)
        except subprocess.TimeoutExpired:
            raise gw.TestFailure("edgerelay started with a %d-iteration hash" % iterations)
        check(r.returncode != 0, "edgerelay with %d iterations exited %d" % (iterations, r.returncode))
        check(want.search(r.stderr), "edgerelay with %d iterations does not name %s:4:%d:\n%s"
              % (iterations, path, column, r.stderr))
        check("listening on" not in r.stderr, "edgerelay opened a listener:\n" + r.stderr)
        gw.log("%d iterations refused in %.3f s: %s" % (iterations, time.monotonic() - started,
                                                        want.search(r.stderr).group(0)))

    path = os.path.join(workdir, "iterations-max.yaml")
    with open(path, "w") as f:
        f.write(CONFIG % {"hash": pbkdf2_hash(PASSWORD, 1_000_000, key=os.urandom(32))})
    r = gw.run([binary, "check", "--config", path], timeout=10)
    check(r.returncode == 0, "check with 1000000 iterations (the bound) exited %d:\n%s%s"
          % (r.returncode, r.stdout, r.stderr))


def timed_login(port, user, password, source="127.0.0.1"):
    """One RFC 1929 login; returns (status, seconds from sending the credentials to the status)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0)) as s:
        s.sendall(b"\x05\x01\x02")
        check(gw.recv_exact(s, 2) == b"\x05\x02", "the gateway did not choose user/password")
        u, p = user.encode(), password.encode()
        sent = time.monotonic()
        s.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        status = gw.recv_exact(s, 2)
        took = time.monotonic() - sent
        check(status[0] == 1, "auth status version %r" % status)
        return status[1], took


def unknown_user_timing(binary, workdir):
    g = gw.Gateway(binary, CONFIG % {"hash": gw.make_password_hash(binary, PASSWORD)}, workdir)
    with gw.running(g):
        g.start()
        wrong, unknown = [], []
        # Interleaved, so that a load change on the machine touches both series alike.
        for i in range(7):
            status, took = timed_login(g.port(), "alice", "wrong-%d" % i)
            check(status == 1, "a wrong password for alice got status %d" % status)
            wrong.append(took)
            status, took = timed_login(g.port(), "nobody-%d" % i, "wrong-%d" % i)
            check(status == 1, "an unknown user got status %d" % status)
            unknown.append(took)
        w, u = statistics.median(wrong), statistics.median(unknown)
        gw.log("median failed login: wrong password %.1f ms, unknown user %.1f ms (ratio %.2f)"
               % (w * 1e3, u * 1e3, u / w))
        check(w >= 0.005, "a wrong password took %.2f ms: the check is not a real PBKDF2 run" % (w * 1e3))
        check(0.5 <= u / w <= 2.0, "an unknown user costs %.1f ms, a wrong password %.1f ms: the timing tells "
              "which names exist" % (u * 1e3, w * 1e3))
        recs = g.wait_access_records(14)
        check(len(recs) == 14 and all(r["result"] == "bad_credentials" for r in recs),
              "expected 14 bad_credentials lines: %r" % recs)
        g.stop_ok()


def echo_round_trips(tunnel, count, pause=0.002):
    rtts = []
    ping = b"p" * 32
    for _ in range(count):
        sent = time.monotonic()
        tunnel.sendall(ping)
        check(gw.recv_exact(tunnel, len(ping)) == ping, "the tunnel did not echo")
        rtts.append(time.monotonic() - sent)
        time.sleep(pause)
    return rtts


def checks_off_the_worker(binary, workdir):
    echo = gw.EchoServer()
    # The costliest hash a config may hold: about 7x the default cost a check.
    g = gw.Gateway(binary, CONFIG % {"hash": pbkdf2_hash(PASSWORD, 1_000_000)}, workdir, workers=1)
    with gw.running(g, echo):
        g.start()
        tunnel = gw.socks5_connect(g.address(), "127.0.0.1", echo.port, user="alice", password=PASSWORD, timeout=30)
        status, verification = timed_login(g.port(), "alice", "wrong")
        check(status == 1, "a wrong password got status %d" % status)
        quiet = echo_round_trips(tunnel, 50)

        stop = threading.Event()
        failed = []

        def flood(i):
            source = "127.0.1.%d" % (i + 1)
            for n in range(200):
                if stop.is_set():
                    return
                try:
                    status, _ = timed_login(g.port(), "alice", "wrong-%d" % n, source)
                    failed.append(status)
                except (OSError, gw.SocksError):
                    return  # the gateway closing at the end

        threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(verification / 2)
        # Echo for at least three verifications' time and until two failed logins were answered
        # meanwhile, within a hard limit.
        before = len(g.stdout_lines())
        started = time.monotonic()
        busy = []
        while (time.monotonic() - started < 3 * verification or len(busy) < 20
               or len(g.stdout_lines()) - before < 2) and time.monotonic() - started < 30 and len(busy) < 20000:
            busy += echo_round_trips(tunnel, 5)
        verified_during = len(g.stdout_lines()) - before
        stop.set()
        for t in threads:
            t.join(30)
        tunnel.close()

        busy.sort()
        p90, worst = busy[len(busy) * 9 // 10], busy[-1]
        gw.log("verification %.0f ms; quiet echo p90 %.2f ms; %d echoes during the flood: p50 %.2f ms, p90 %.2f ms, "
               "max %.1f ms; %d failed logins answered meanwhile, %d in all"
               % (verification * 1e3, sorted(quiet)[45] * 1e3, len(busy), busy[len(busy) // 2] * 1e3, p90 * 1e3,
                  worst * 1e3, verified_during, len(failed)))
        check(verified_during >= 2, "the flood did not keep the verifications busy during the measurement")
        check(all(s == 1 for s in failed), "a flooding login got in: %r" % sorted(set(failed)))
        # On the worker, each verification would hold every echo behind it for up to its whole length.
        check(p90 < verification / 10, "echo p90 %.1f ms during the flood, one verification %.0f ms"
              % (p90 * 1e3, verification * 1e3))
        check(worst < verification / 2, "the slowest echo took %.1f ms during the flood, one verification %.0f ms"
              % (worst * 1e3, verification * 1e3))
        g.stop_ok()


def test(binary, workdir):
    gw.run_parts(binary, workdir, (iteration_bound, unknown_user_timing, checks_off_the_worker))


if __name__ == "__main__":
    gw.main(test)
