#!/usr/bin/env python3
"""Scale-out behind Debian's HAProxy (docs/load-balancer.md, deploy/haproxy-scale-out.cfg).

HAProxy in TCP mode with send-proxy-v2 sits in front of two edgerelay instances, checking each
one's /readyz on its admin port.
A. Sessions from 127.0.0.2..127.0.0.8 spread over both instances; each instance's access log
   names the real client (the bound source address) and HAProxy as proxied_by. A rule denying
   127.0.0.9 denies it through HAProxy.
B. With two tunnels open on each instance, SIGTERM one: its /readyz turns 503, HAProxy marks it
   DOWN, new sessions all go to the other, and all four tunnels keep echoing until they end; the
   stopped instance then exits 0."""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import gateway as gw
from gateway import check

ADMIN_RE = r" admin: listening on 127\.0\.0\.1:(\d+)"
SOURCES = ["127.0.0.%d" % i for i in range(2, 9)]
DENIED = "127.0.0.9"


def instance_config():
    return ("listeners:\n"
            '  - {name: test, bind: "127.0.0.1:0", protocols: [socks5], proxy_protocol: {from: [127.0.0.1/32]}}\n'
            'admin: {bind: "127.0.0.1:0"}\n'
            "rules:\n"
            "  - {name: blocked, action: deny, from: [%s/32]}\n"
            '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
            "limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 60s, shutdown_grace: 20s}\n"
            "log: {level: info, access: json}\n" % DENIED)


def admin_port(g):
    line = g.wait_stderr(ADMIN_RE, timeout=5)
    check(line is not None, "no admin listening line:\n" + g.stderr_text())
    return int(re.search(ADMIN_RE, line).group(1))


def readyz(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return int(data.split(b" ", 2)[1])
    except (OSError, IndexError, ValueError):
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tunnel_from(source, lb_port, echo):
    """A SOCKS5 tunnel to `echo` through HAProxy, from `source`."""
    s = socket.create_connection(("127.0.0.1", lb_port), timeout=5, source_address=(source, 0))
    try:
        gw.socks5_handshake(s, "127.0.0.1", echo.port)
    except BaseException:
        s.close()
        raise
    return s


def roundtrip(s, payload, what):
    s.sendall(payload)
    got = gw.recv_exact(s, len(payload))
    check(got == payload, "%s: echoed %r" % (what, got))


def server_states(stats_path):
    """{server name: status} from HAProxy's stats socket (show stat CSV)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(stats_path)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "edgerelay" and row.get("svname") not in ("BACKEND", "FRONTEND", None):
            out[row["svname"]] = row["status"]
    return out


def records_from(g, source):
    return [r for r in g.access_records() if r["client"].startswith(source + ":")]


def main():
    binary = gw.binary_from_argv()
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check(os.path.exists(haproxy), "haproxy is not installed (Debian package haproxy, scripts/install-deps.sh)")
    work = tempfile.mkdtemp(prefix="edgerelay-haproxy-")
    echo = gw.EchoServer()
    dirs = [os.path.join(work, n) for n in ("edge1", "edge2")]
    for d in dirs:
        os.makedirs(d)
    g1 = gw.Gateway(binary, instance_config(), dirs[0])
    g2 = gw.Gateway(binary, instance_config(), dirs[1])
    lb = None
    open_tunnels = []
    try:
        g1.start()
        g2.start()
        ports = [g1.port(), g2.port()]
        admins = [admin_port(g1), admin_port(g2)]
        lb_port = free_port()
        stats = os.path.join(work, "haproxy.sock")
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(gw.__file__)))), "deploy", "haproxy-scale-out.cfg")) as f:
            example = f.read()
        # The shipped example, with this run's ports and a stats socket to read server states.
        cfg = example.replace("bind 127.0.0.1:1080", "bind 127.0.0.1:%d" % lb_port)
        cfg = cfg.replace("127.0.0.1:11080 check port 19090", "127.0.0.1:%d check port %d" % (ports[0], admins[0]))
        cfg = cfg.replace("127.0.0.1:12080 check port 29090", "127.0.0.1:%d check port %d" % (ports[1], admins[1]))
        cfg = cfg.replace("global\n", "global\n    stats socket %s level admin\n" % stats, 1)
        check(str(lb_port) in cfg and str(admins[1]) in cfg, "the example config did not take the ports:\n" + cfg)
        cfg_path = os.path.join(work, "haproxy.cfg")
        with open(cfg_path, "w") as f:
            f.write(cfg)
        lb = subprocess.Popen([haproxy, "-db", "-f", cfg_path], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=gw.die_with_parent)
        up = gw.wait_until(lambda: os.path.exists(stats) and server_states(stats) == {"edge1": "UP", "edge2": "UP"}, 15)
        check(up is True, "HAProxy did not mark both instances UP: %r" % (server_states(stats) if os.path.exists(stats)
                                                                           else "no stats socket"))

        # A: spread, real client addresses, a rule keyed on one source.
        for i, source in enumerate(SOURCES):
            with tunnel_from(source, lb_port, echo) as s:
                roundtrip(s, b"hello %d" % i, "session from " + source)
        check(g1.wait_access_records(1) and g2.wait_access_records(1), "no access records")
        time.sleep(0.3)
        both = g1.access_records() + g2.access_records()
        check(len(g1.access_records()) >= 2 and len(g2.access_records()) >= 2,
              "sessions did not spread: %d and %d" % (len(g1.access_records()), len(g2.access_records())))
        for source in SOURCES:
            recs = [r for r in both if r["client"].startswith(source + ":")]
            check(len(recs) == 1, "one record from %s expected, got %r" % (source, recs))
            rec = recs[0]
            gw.check_access_record(rec)
            check(rec["result"] == "ok" and rec["rule"] == "loopback", "session from %s: %r" % (source, rec))
            check(rec["proxied_by"].startswith("127.0.0.1:"), "proxied_by is HAProxy: %r" % rec)
        try:
            tunnel_from(DENIED, lb_port, echo).close()
            check(False, "the session from %s was not denied" % DENIED)
        except gw.SocksError as e:
            check(e.code == 0x02, "the session from %s got %r, not 0x02" % (DENIED, e.code))
        time.sleep(0.3)
        denied = records_from(g1, DENIED) + records_from(g2, DENIED)
        check(len(denied) == 1 and denied[0]["rule"] == "blocked" and denied[0]["result"] == "denied",
              "denied record: %r" % denied)

        # B: tunnels open on both instances, then SIGTERM the first.
        before = (len(g1.access_records()), len(g2.access_records()))
        for i in range(8):
            open_tunnels.append(tunnel_from(SOURCES[i % len(SOURCES)], lb_port, echo))
        for i, s in enumerate(open_tunnels):
            roundtrip(s, b"before %d" % i, "tunnel %d before SIGTERM" % i)
        # Which instance holds which tunnel: each local port appears in its instance's /status? Use
        # the session counts instead: both must hold some, as roundrobin alternates.
        g1.signal(signal.SIGTERM)
        check(gw.wait_until(lambda: readyz(admins[0]) == 503, 5) is True, "edge1 /readyz did not turn 503")
        check(readyz(admins[1]) == 200, "edge2 /readyz is not 200")
        down = gw.wait_until(lambda: server_states(stats).get("edge1", "").startswith("DOWN"), 10)
        check(down is True, "HAProxy did not mark edge1 DOWN: %r" % server_states(stats))
        mid2 = len(g2.access_records())
        for i, source in enumerate(SOURCES):
            with tunnel_from(source, lb_port, echo) as s:
                roundtrip(s, b"after %d" % i, "new session from %s after SIGTERM" % source)
        check(gw.wait_until(lambda: len(g2.access_records()) >= mid2 + len(SOURCES), 5) is True,
              "new sessions did not all reach edge2")
        check(len(g1.access_records()) == before[0], "edge1 logged sessions after SIGTERM")
        for i, s in enumerate(open_tunnels):
            roundtrip(s, b"during drain %d" % i, "established tunnel %d after SIGTERM" % i)
        check(g1.alive(), "edge1 exited while its tunnels were open")
        for s in open_tunnels:
            s.close()
        open_tunnels = []
        code = g1.wait_exit(15)
        check(code == 0, "edge1 exited %r after its tunnels ended" % code)
        held_by_1 = len(g1.access_records()) - before[0]
        check(held_by_1 >= 2, "edge1 held %d of the tunnels (roundrobin gives it about half)" % held_by_1)
        gw.log("ok: %d+%d sessions spread, edge1 drained %d tunnels" % (before[0], before[1], held_by_1))
    except BaseException:
        g1.dump()
        g2.dump()
        if lb is not None:
            lb.kill()
            gw.log("haproxy output:", lb.communicate(timeout=5)[0].decode(errors="replace"))
            lb = None
        raise
    finally:
        for s in open_tunnels:
            s.close()
        if lb is not None:
            lb.kill()
            lb.wait(5)
        g1.kill()
        g2.kill()
        echo.close()
        shutil.rmtree(work, ignore_errors=True)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
