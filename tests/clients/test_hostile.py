#!/usr/bin/env python3
"""Hostile clients against the real binary, exact bytes in and out (issue "Trust at the door"):
- a SOCKS4 USERID is a claim: it never matches `users`, and is logged as claimed_user;
- a SOCKS5 domain with a NUL byte (`localhost\\0.corp.example`) is refused (REP 0x04) before any rule;
- the unspecified addresses (0.0.0.0, ::, ::ffff:0.0.0.0, the domains 0, 0x0, 0.0.0.0, HTTP CONNECT
  0.0.0.0 and [::]) never reach the loopback service the kernel would deliver them to;
- inet_aton numeric forms (2130706433, 0x7f.1, 127.1, 0177.0.0.1) are decided as 127.0.0.1 (denied);
- multicast and broadcast are refused for TCP;
- backend:NAME reaches portbase+1 only, not another port of the backend's host, nor portbase over TCP;
- a tunnel whose client half-closed while the target neither reads nor closes ends at fin_timeout."""

import socket
import struct
import time

import gateway as gw
from gateway import check


def service(port=0):
    """A service that counts the connections it accepts and never reads, on every local address: a
    client that dials the unspecified address reaches it too."""
    return gw.CountingService(host="0.0.0.0", port=port, keep=True)


def service_pair():
    """Services on two consecutive ports: the backend's portbase and its portbase+1."""
    for _ in range(50):  # bounded: the port below an ephemeral one is usually free
        upper = service()
        try:
            return service(upper.port - 1), upper
        except OSError:
            upper.close()
    raise gw.TestFailure("no two consecutive free ports")


CONFIG = """\
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4, http], auth: none}
backends:
  - {name: sql, host: 127.0.0.1, portbase: %(portbase)d}
users:
  - {name: alice, password: "%(hash)s"}
rules:
  - {name: alice-only, action: allow, users: [alice], to: ["127.0.0.0/8"]}
  - {name: corp, action: allow, to: ["*.corp.example:%(svc)d"]}
  - {name: sql-service, action: allow, to: ["backend:sql"]}
  - {name: no-loopback, action: deny, to: ["127.0.0.0/8", "[::1]"]}
  - {name: loopback-clients, action: allow, from: ["127.0.0.0/8", "::1"]}
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 60s, fin_timeout: 1s, shutdown_grace: 2s}
log: {level: info, access: json}
"""


def test(binary, workdir):
    svc = service()
    # The backend's service port is portbase+1; `svc` stands at another port of the same host, and
    # `portbase_service` at portbase itself (the backend's UDP port, here taken by a TCP service).
    portbase_service, backend_service = service_pair()
    pw_hash = gw.make_password_hash(binary, "alice-" + str(time.time()))
    g = gw.Gateway(binary, CONFIG % {"svc": svc.port, "portbase": portbase_service.port, "hash": pw_hash}, workdir)
    with gw.running(g, svc, backend_service, portbase_service):
        g.start()
        port = g.port()

        # A.1: SOCKS4 CONNECT to the service with USERID alice: a claim, so the users rule must
        # not match; 127.0.0.1 is then denied by no-loopback.
        before = len(g.access_records())
        req = b"\x04\x01" + struct.pack(">H", svc.port) + bytes([127, 0, 0, 1]) + b"alice\x00"
        got = gw.exchange(port, req, 8)
        check(got[:2] == b"\x00\x5b", "SOCKS4 with USERID alice was answered %r, want 00 5B" % got)
        rec = g.one_new_record(before, "SOCKS4 USERID alice")
        check(rec["user"] == "" and rec.get("claimed_user") == "alice",
              "a USERID must be logged as claimed_user, not user: %r" % rec)
        check(rec["rule"] == "no-loopback", "the USERID session was decided by %r" % rec["rule"])

        # A.2: a NUL in a SOCKS5 domain is refused before any rule sees it.
        rep = gw.socks5_rep(port, gw.socks5_domain(b"localhost\x00.corp.example", svc.port))
        check(rep == 0x04, "SOCKS5 domain localhost\\0.corp.example got REP %r, want 0x04" % rep)
        for bad in (b"a" * 64 + b".corp.example", b"bad name.corp.example", b"x%00.corp.example"):
            rep = gw.socks5_rep(port, gw.socks5_domain(bad, svc.port))
            check(rep == 0x04, "SOCKS5 domain %r got REP %r, want 0x04" % (bad, rep))

        # A.3: the unspecified addresses, literal and as names.
        unspecified = [
            gw.socks5_request(1, bytes(4), svc.port),
            gw.socks5_request(4, bytes(16), svc.port),
            gw.socks5_request(4, bytes(10) + b"\xff\xff" + bytes(4), svc.port),
            gw.socks5_domain(b"0", svc.port),
            gw.socks5_domain(b"0x0", svc.port),
            gw.socks5_domain(b"0.0.0.0", svc.port),
        ]
        for r in unspecified:
            rep = gw.socks5_rep(port, r)
            check(rep not in (None, 0x00), "unspecified destination %r was granted (REP %r)" % (r[3:], rep))
        for authority in ("0.0.0.0:%d" % svc.port, "[::]:%d" % svc.port):
            got = gw.exchange(port, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                              % (authority.encode(), authority.encode()), 12)
            check(got.startswith(b"HTTP/1.1 ") and not got.startswith(b"HTTP/1.1 200"),
                  "CONNECT %s was answered %r" % (authority, got))
        # Numeric forms denote 127.0.0.1, which no-loopback denies (REP 0x02).
        for name in (b"2130706433", b"0x7f.1", b"127.1", b"0177.0.0.1", b"0x7f000001"):
            rep = gw.socks5_rep(port, gw.socks5_domain(name, svc.port))
            check(rep == 0x02, "numeric form %r got REP %r, want 0x02 (denied as 127.0.0.1)" % (name, rep))
        # Multicast and broadcast are never TCP destinations.
        for addr in (bytes([224, 0, 0, 1]), bytes([239, 1, 2, 3]), bytes([255, 255, 255, 255])):
            rep = gw.socks5_rep(port, gw.socks5_request(1, addr, svc.port))
            check(rep not in (None, 0x00), "TCP to %r was granted" % (addr,))
        time.sleep(0.3)
        check(svc.accepted == 0, "the loopback service was reached %d time(s)" % svc.accepted)

        # A.4: backend:sql grants portbase+1, not another port of its host.
        got = gw.exchange(port, b"CONNECT sql:%d HTTP/1.1\r\n\r\n" % svc.port, 12)
        check(got.startswith(b"HTTP/1.1 403"), "CONNECT sql:<other port> was answered %r, want 403" % got)
        check(svc.accepted == 0, "backend:sql reached another port of its host")
        got = gw.exchange(port, b"CONNECT sql:%d HTTP/1.1\r\n\r\n" % backend_service.port, 12)
        check(got.startswith(b"HTTP/1.1 200"), "CONNECT sql:<portbase+1> was answered %r, want 200" % got)
        # A.4, TCP to portbase: backend:sql grants it for UDP datagrams only, so a TCP session there
        # falls through to no-loopback.
        got = gw.exchange(port, b"CONNECT sql:%d HTTP/1.1\r\n\r\n" % portbase_service.port, 12)
        check(got.startswith(b"HTTP/1.1 403"), "CONNECT sql:<portbase> was answered %r, want 403" % got)
        target = "sql:%d" % portbase_service.port
        recs = gw.wait_until(lambda: [r for r in g.access_records() if r["target"] == target], 5)
        check(len(recs) == 1 and recs[0]["rule"] == "no-loopback",
              "CONNECT sql:<portbase> was logged as %r, want one line by no-loopback" % recs)
        check(portbase_service.accepted == 0, "backend:sql reached its portbase over TCP")

        # E: fin_timeout. The client half-closes; the target never reads nor closes.
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"CONNECT sql:%d HTTP/1.1\r\n\r\n" % backend_service.port)
        got = c.recv(64)
        check(got.startswith(b"HTTP/1.1 200"), "fin test CONNECT answered %r" % got)
        before = len(g.access_records())
        started = time.monotonic()
        c.shutdown(socket.SHUT_WR)
        closed = c.recv(1) == b""
        elapsed = time.monotonic() - started
        c.close()
        check(closed, "the half-closed tunnel sent data instead of closing")
        check(elapsed < 8, "the half-closed tunnel stayed open %.1f s (fin_timeout is 1 s)" % elapsed)
        check(gw.wait_until(lambda: any(r.get("detail") == "fin_timeout" for r in g.access_records()[before - 1:]), 5),
              "no access-log line says fin_timeout: %r" % g.access_records()[before - 1:])

        check(g.alive(), "edgerelay died")
        g.stop_ok(check_log=True)


if __name__ == "__main__":
    gw.main(test)
