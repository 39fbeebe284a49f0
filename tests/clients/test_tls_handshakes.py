#!/usr/bin/env python3
"""Half-open TLS handshakes (a ClientHello less its last byte, then silence) against the real
binary, and the limits.tls_handshakes slots that bound them (docs/config.md, limits):
- 40 from 127.0.0.1 with per_source 8: 8 keep waiting, the other 32 are closed at once (EOF well
  before the handshake timeout), each logged "result":"tls_failed","detail":"tls_handshakes_per_source";
- meanwhile a TLS client from 127.0.0.2 completes its handshake and a CONNECT through the listener
  to an echo server;
- the operator log says so once for 127.0.0.1, however many were refused;
- with max 16 full, a source that runs none is refused too (detail tls_handshakes_full), one line
  for it; once the half-open ones close, their slots come back and a new handshake gets in;
- with the default limits, 1,000 half-open handshakes from 127.0.0.1 (and again from 100 sources
  127.0.x.y) leave the gateway's resident memory (VmRSS) within a bound: without the limits each
  holds about 100 KB of TLS state until the handshake timeout."""

import socket
import ssl
import time

import gateway as gw
import test_tls_clients as tls_clients
from gateway import check

PER_SOURCE_LINE = r"tls: listener 'test': TLS handshakes from %s refused: 8 running from there"
FULL_LINE = r"tls: listener 'test': TLS handshakes from %s refused: 16 running in all"

# Resident memory the gateway may gain over its idle size with 1,000 half-open handshakes under
# the default limits (512 at once, 32 per source: about 3 MB from one source, 50 MB from many).
# Without the limits the same handshakes cost about 100 MB.
ONE_SOURCE_RSS_BOUND_MB = 25
MANY_SOURCES_RSS_BOUND_MB = 75


def client_hello_less_last_byte():
    """The first flight of a real TLS client, one byte short: the server has to wait for the rest."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="gw.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    check(len(hello) > 100 and hello[0] == 0x16, "not a ClientHello: %r" % hello[:8])
    return hello[:-1]


def half_open(g, source, count, hello):
    socks = []
    for _ in range(count):
        s = socket.create_connection(g.address(), timeout=10, source_address=(source, 0))
        s.sendall(hello)
        socks.append(s)
    return socks


def closed_by_gateway(s):
    """True when the gateway closed `s` (EOF or reset); False when it is open and silent."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def count_closed(socks, want, timeout):
    """Waits until `want` of socks were closed by the gateway (bounded); returns how many were."""
    done = set()

    def enough():
        for i, s in enumerate(socks):
            if i not in done and closed_by_gateway(s):
                done.add(i)
        return len(done) >= want

    gw.wait_until(enough, timeout, interval=0.05)
    enough()
    return len(done)


def close_all(socks):
    for s in socks:
        s.close()


def connect_through_tls(g, pki, source, echo):
    """A full TLS handshake from `source`, then CONNECT to the echo server and a round trip."""
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    raw = socket.create_connection(g.address(), timeout=10, source_address=(source, 0))
    with ctx.wrap_socket(raw, server_hostname="gw.test") as s:
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (echo.port, echo.port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            check(chunk, "TLS client from %s: closed before the CONNECT reply (%r)" % (source, head))
            head += chunk
        check(head.startswith(b"HTTP/1.1 200"), "TLS client from %s: CONNECT reply %r" % (source, head[:40]))
        s.sendall(b"ping through tls")
        check(gw.recv_exact(s, 16) == b"ping through tls", "TLS client from %s: echo came back altered" % source)
        return s.version()


def records(g, start, detail):
    return [r for r in g.access_records()[start:] if r.get("detail") == detail]


def tls_config(pki, limits):
    return ("listeners:\n"
            '  - {name: test, bind: "127.0.0.1:0", protocols: [http, socks5], tls: {cert: %s, key: %s}}\n'
            "rules:\n"
            '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
            "limits: {handshake_timeout: 20s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 2s%s}\n"
            "log: {level: info, access: json}\n" % (pki["server.pem"], pki["server.key"], limits))


def vm_rss_mb(pid):
    return gw.vm_rss_kib(pid) / 1024.0


def check_slots(binary, workdir, pki, echo, hello):
    g = gw.Gateway(binary, tls_config(pki, ", tls_handshakes: {max: 16, per_source: 8}"), workdir, workers=2)
    with gw.running(g):
        g.start()
        start = time.monotonic()
        flood = half_open(g, "127.0.0.1", 40, hello)
        closed = count_closed(flood, 32, timeout=5)
        took = time.monotonic() - start
        check(closed == 32, "%d of 40 half-open handshakes from one source were closed within 5 s; expected the "
              "32 beyond per_source 8 (the handshake timeout is 20 s)" % closed)
        gw.log("32 refused handshakes closed after %.2f s" % took)
        time.sleep(0.5)
        check(count_closed(flood, 33, timeout=0) == 32, "a handshake holding a slot was closed")

        version = connect_through_tls(g, pki, "127.0.0.2", echo)
        check(version == "TLSv1.3", "TLS client from 127.0.0.2 negotiated %r" % version)

        g.wait_access_records(33, timeout=10)
        refused = records(g, 0, "tls_handshakes_per_source")
        check(len(refused) == 32, "expected 32 access-log lines with detail tls_handshakes_per_source, got %d"
              % len(refused))
        for r in refused:
            gw.check_access_record({k: v for k, v in r.items() if k not in tls_clients.TLS_FIELDS})
            check(r["result"] == "tls_failed" and r["client"].startswith("127.0.0.1:") and r["protocol"] == "tls",
                  "refused handshake logged as %r" % r)
        ok = [r for r in g.access_records() if r["result"] == "ok"]
        check(len(ok) == 1 and ok[0]["client"].startswith("127.0.0.2:") and ok[0].get("tls") == "TLSv1.3",
              "expected one ok TLS session from 127.0.0.2, got %r" % ok)
        lines = [l for l in g.stderr_lines() if "TLS handshakes from" in l]
        check(len(lines) == 1 and g.wait_stderr(PER_SOURCE_LINE % r"127\.0\.0\.1", timeout=1),
              "expected one operator-log line for 127.0.0.1, got %r" % lines)

        # Another 8 from 127.0.0.3 fill max 16: a source running none is refused as well.
        before = len(g.stdout_lines())
        second = half_open(g, "127.0.0.3", 8, hello)
        # Two workers may take connections in any order: give these their slots before the next ones.
        time.sleep(0.5)
        third = half_open(g, "127.0.0.4", 3, hello)
        check(count_closed(third, 3, timeout=5) == 3, "handshakes beyond max 16 were not closed at once")
        check(count_closed(second, 1, timeout=0.5) == 0, "a handshake within max 16 was closed")
        gw.wait_until(lambda: len(records(g, before, "tls_handshakes_full")) >= 3, 5)
        full = records(g, before, "tls_handshakes_full")
        check(len(full) == 3 and all(r["client"].startswith("127.0.0.4:") for r in full),
              "expected 3 lines with detail tls_handshakes_full from 127.0.0.4, got %r" % full)
        check(g.wait_stderr(FULL_LINE % r"127\.0\.0\.4", timeout=5), "no operator-log line for a full table")
        check(len([l for l in g.stderr_lines() if "TLS handshakes from 127.0.0.4" in l]) == 1,
              "more than one operator-log line for 127.0.0.4")

        # Slots come back when the handshakes end (here: the clients give up).
        close_all(flood + second + third)
        check(gw.wait_until(lambda: len(g.stdout_lines()) >= before + 3 + 16, 10),
              "the 16 half-open sessions did not end after their clients closed")
        check(connect_through_tls(g, pki, "127.0.0.1", echo) == "TLSv1.3", "127.0.0.1 got no slot back")
        check(g.alive(), "edgerelay died during the test")
        g.stop_ok()


def check_memory(binary, workdir, pki, hello):
    # Sessions per source raised above 1,000 so that every one of them reaches the TLS handshake;
    # limits.tls_handshakes keeps its defaults.
    g = gw.Gateway(binary, tls_config(pki, ", per_source: 4000"), workdir, workers=2)
    with gw.running(g):
        g.start()
        time.sleep(0.5)
        idle = vm_rss_mb(g.pid)
        for sources, bound in ((1, ONE_SOURCE_RSS_BOUND_MB), (100, MANY_SOURCES_RSS_BOUND_MB)):
            logged = len(g.stdout_lines())
            socks = []
            for k in range(1000):
                source = "127.0.0.1" if sources == 1 else "127.0.%d.%d" % (1 + k % sources // 250,
                                                                        1 + k % sources % 250)
                socks += half_open(g, source, 1, hello)
            time.sleep(1.5)  # every first flight read and its handshake started, or refused
            peak = vm_rss_mb(g.pid)
            close_all(socks)
            gw.log("1000 half-open handshakes from %d source(s): VmRSS %.1f MB, idle %.1f MB"
                   % (sources, peak, idle))
            check(peak - idle < bound, "1000 half-open TLS handshakes from %d source(s) grew VmRSS by %.1f MB "
                  "(%.1f -> %.1f), bound %d MB" % (sources, peak - idle, idle, peak, bound))
            check(gw.wait_until(lambda: len(g.stdout_lines()) >= logged + 1000, 15),
                  "the 1000 half-open sessions did not all end after their clients closed")
        check(g.alive(), "edgerelay died during the test")
        g.stop_ok()


def test(binary, workdir):
    pki = tls_clients.make_pki(workdir)
    echo = gw.EchoServer()
    try:
        hello = client_hello_less_last_byte()
        check_slots(binary, workdir, pki, echo, hello)
        check_memory(binary, workdir, pki, hello)
    finally:
        echo.close()


if __name__ == "__main__":
    gw.main(test)
