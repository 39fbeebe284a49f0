#!/usr/bin/env python3
"""Hostile client inputs against the real binary, exact bytes in and out:
- host names are validated before any rule or resolver sees them (RFC 1123: letters, digits,
  hyphen, underscore, labels of 1-63, at most 253 in all): SOCKS4a names get 0x5B, SOCKS5 names
  0x04, HTTP CONNECT authorities and forward-proxy URLs 400, each logged "malformed"; the same
  names one byte shorter are valid and reach the rules (a name rule denies them: 0x5B, 0x02, 403);
  a NUL that getaddrinfo would cut at never makes `localhost\\0.corp.example` reach a loopback
  service that counts its connections;
- client-chosen strings (a SOCKS4 USERID, an RFC 1929 user, an HTTP Basic user, a TLS SNI) with
  ESC, CSI, CR and LF stay inside their one access-log line as JSON escapes, and the operator log
  on stderr has no raw control byte and no line that is not the gateway's own;
- 602SQL discovery datagrams are decided by the rules (a source the rules deny for the backend's
  UDP portbase gets no reply and its query never reaches the server) and limited per source (a
  flood of 100 queries gets at most its bucket, 20 at once then 10 a second; another source still
  gets its answer)."""

import base64
import os
import re
import socket
import ssl
import struct
import threading
import time

import gateway as gw
from gateway import check

OPERATOR_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) [a-z0-9_-]+: ")


def name_of_length(total, suffix):
    """A host name of exactly `total` bytes ending in `suffix`, its other labels 63 bytes or shorter."""
    prefix_len = total - len(suffix) - 1
    labels = []
    while prefix_len > 0:
        n = min(63, prefix_len)
        if prefix_len - n == 1:  # a lone dot would be left over: shorten this label by one
            n -= 1
        labels.append(b"a" * n)
        prefix_len -= n + 1
    name = b".".join(labels + [suffix])
    assert len(name) == total, (len(name), total)
    return name


# -- host names -------------------------------------------------------------------------------

NAMES_CONFIG = """\
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4, http], auth: none}
rules:
  - {name: names-denied, action: deny, to: ["*.deny.example"]}
  - {name: corp, action: allow, to: ["*.corp.example:%(svc)d"]}
  - {name: no-loopback, action: deny, to: ["127.0.0.0/8", "[::1]"]}
  - {name: loopback-clients, action: allow, from: ["127.0.0.0/8", "::1"]}
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 2s}
log: {level: info, access: json}
"""

LABEL_64 = b"a" * 64 + b".deny.example"
NAME_254 = name_of_length(254, b"deny.example")
NAME_253 = name_of_length(253, b"deny.example")
# Names that are not host names, each of which a rule would deny were it let through as a name.
BAD_NAMES = [LABEL_64, NAME_254, b"bad name.deny.example", b"bad\x1bname.deny.example", b"x%00.deny.example",
             b"a..deny.example", b"-\xff-.deny.example"]
# Valid at the limits: 63-byte labels, 253 bytes in all. They reach the rules (names-denied).
GOOD_NAMES = [b"a" * 63 + b".deny.example", NAME_253, b"under_score.deny.example"]


def socks4a(name, port, user_id=b""):
    return b"\x04\x01" + struct.pack(">H", port) + b"\x00\x00\x00\x01" + user_id + b"\x00" + name + b"\x00"


def connect_request(authority):
    return b"CONNECT " + authority + b" HTTP/1.1\r\nHost: " + authority + b"\r\n\r\n"


def forward_get(host_port):
    return b"GET http://" + host_port + b"/ HTTP/1.1\r\nHost: " + host_port + b"\r\nConnection: close\r\n\r\n"


def names_at_the_door(binary, workdir):
    svc = gw.CountingService()
    g = gw.Gateway(binary, NAMES_CONFIG % {"svc": svc.port}, workdir)
    with gw.running(g, svc):
        g.start()
        port = g.port()

        def one(what, request, want, expect_reply, expect_result):
            before = len(g.stdout_lines())
            got = gw.exchange(port, request, want)
            check(expect_reply(got), "%s was answered %r" % (what, got))
            rec = g.one_new_record(before, what, settle=0.05)
            check(rec["result"] == expect_result, "%s logged %r, expected result %r" % (what, rec, expect_result))
            return rec

        socks4_refused = lambda got: got == b"\x00\x5b" + bytes(6)
        socks5_rep_is = lambda rep: (lambda got: len(got) == 4 and got[:3] == b"\x05\x00\x05" and got[3] == rep)
        http_status = lambda code: (lambda got: got.startswith(b"HTTP/1.1 %d " % code))

        # A NUL inside a name: getaddrinfo would read `localhost`, and the corp rule would let the
        # session through to the loopback service. SOCKS4a ends its name at the NUL, so the name is
        # `localhost` (a loopback address, denied); the rest is the client's first data.
        nul = b"localhost\x00.corp.example"
        one("SOCKS4a localhost\\0.corp.example", socks4a(nul, svc.port), 8, socks4_refused, "denied")
        one("SOCKS5 localhost\\0.corp.example", gw.socks5_domain(nul, svc.port), 4, socks5_rep_is(0x04), "malformed")
        one("CONNECT localhost\\0.corp.example", connect_request(nul + b":%d" % svc.port), 16, http_status(400),
            "malformed")
        one("forward GET localhost\\0.corp.example", forward_get(nul + b":%d" % svc.port), 16, http_status(400),
            "malformed")
        one("forward GET localhost%00.corp.example", forward_get(b"localhost%%00.corp.example:%d" % svc.port), 16,
            http_status(400), "malformed")
        time.sleep(0.2)
        check(svc.accepted == 0, "localhost\\0.corp.example reached the loopback service %d time(s)" % svc.accepted)

        for name in BAD_NAMES:
            one("SOCKS4a %r" % name, socks4a(name, 80), 8, socks4_refused, "malformed")
            if len(name) <= 255:
                one("SOCKS5 %r" % name, gw.socks5_domain(name, 80), 4, socks5_rep_is(0x04), "malformed")
            one("CONNECT %r" % name, connect_request(name + b":80"), 16, http_status(400), "malformed")
            one("forward GET %r" % name, forward_get(name + b":80"), 16, http_status(400), "malformed")
        # A forward-proxy URL with a space or a percent-encoded NUL in its host is no host name.
        for host in (b"bad name", b"a%00b"):
            one("forward GET http://%r/" % host, forward_get(host), 16, http_status(400), "malformed")

        # The boundary: the same shapes one byte within the limits are names, and the rules decide them.
        for name in GOOD_NAMES:
            one("SOCKS4a %r" % name, socks4a(name, 80), 8, socks4_refused, "denied")
            one("SOCKS5 %r" % name, gw.socks5_domain(name, 80), 4, socks5_rep_is(0x02), "denied")
            one("CONNECT %r" % name, connect_request(name + b":80"), 16, http_status(403), "denied")
            one("forward GET %r" % name, forward_get(name + b":80"), 16, http_status(403), "denied")

        time.sleep(0.3)
        check(svc.accepted == 0, "the loopback origin was reached %d time(s)" % svc.accepted)
        check(g.alive(), "edgerelay died")
        g.stop_ok()


# -- client strings in the logs ---------------------------------------------------------------

# ESC [31m (a colour), CSI (U+009B, a one-character escape), CR LF and what looks like the start of
# an operator-log line: a terminal, a log viewer or a line-oriented collector must see none of it.
FORGED = "\x1b[31mred\x1b[0m\u009b2J\r\n2026-01-01T00:00:00.000Z error server: forged line"
FORGED_BYTES = FORGED.encode("utf-8")

LOGS_CONFIG = """\
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4, http], auth: none}
  - {name: login, bind: "127.0.0.1:0", protocols: [socks5, http], auth: password}
  - {name: secure, bind: "127.0.0.1:0", protocols: [socks5], tls: {cert: server.pem, key: server.key}}
users:
  - {name: alice, password: "%(hash)s"}
rules:
  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}
limits: {handshake_timeout: 3s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 2s,
         auth_failures: {max: 1000, window: 60s, backoff: 1s, user_delay: 0ms}}
log: {level: debug, access: json}
"""


def make_server_certificate(workdir):
    r = gw.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=gw.test", "-days", "2", "-keyout", os.path.join(workdir, "server.key"),
                "-out", os.path.join(workdir, "server.pem")], timeout=30)
    check(r.returncode == 0, "openssl req failed: %s" % r.stderr)


FORGED_ESCAPES = ("\\u001b", "\\u009b", "\\u000d\\u000a")


def check_escaped_line(g, before, what, field, expected, escapes=FORGED_ESCAPES):
    """The one new access-log line: the raw line holds no control byte but each of `escapes`, and
    its JSON `field` is the client's string exactly (so nothing was cut or altered, only escaped)."""
    g.wait_access_records(before + 1, timeout=10)
    time.sleep(0.1)
    lines = g.stdout_lines()[before:]
    check(len(lines) == 1, "%s: expected one new access-log line, got %d: %r" % (what, len(lines), lines))
    raw = lines[0]
    bad = sorted({"%02x" % ord(c) for c in raw if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f})
    check(not bad, "%s: the access-log line carries raw control bytes %s: %r" % (what, bad, raw))
    missing = [e for e in escapes if e not in raw]
    check(not missing, "%s: the escapes %r are missing from %r" % (what, missing, raw))
    rec = g.access_records()[before]
    check(rec.get(field) == expected, "%s: field %s is %r, expected %r" % (what, field, rec.get(field), expected))
    gw.log("%s:" % what, raw)
    return rec


def client_strings_in_the_logs(binary, workdir):
    make_server_certificate(workdir)
    echo = gw.EchoServer()
    pw_hash = gw.make_password_hash(binary, "right-" + str(time.time()))
    g = gw.Gateway(binary, LOGS_CONFIG % {"hash": pw_hash}, workdir)
    with gw.running(g, echo):
        g.start(listeners=("test", "login", "secure"))

        # A SOCKS4 USERID: logged as claimed_user.
        before = len(g.stdout_lines())
        req = b"\x04\x01" + struct.pack(">H", echo.port) + bytes([127, 0, 0, 1]) + FORGED_BYTES + b"\x00"
        got = gw.exchange(g.port("test"), req, 8)
        check(got[:2] == b"\x00\x5a", "SOCKS4 with a forged USERID was answered %r" % got)
        check_escaped_line(g, before, "SOCKS4 USERID", "claimed_user", FORGED)

        # An RFC 1929 user name with a wrong password: logged as the user who tried.
        before = len(g.stdout_lines())
        with socket.create_connection(g.address("login"), timeout=10) as s:
            s.sendall(b"\x05\x01\x02")
            check(gw.recv_exact(s, 2) == b"\x05\x02", "the login listener did not choose user/password")
            s.sendall(bytes([1, len(FORGED_BYTES)]) + FORGED_BYTES + b"\x05wrong")
            check(gw.recv_exact(s, 2) == b"\x01\x01", "a wrong password was not refused with status 1")
        rec = check_escaped_line(g, before, "RFC 1929 user", "user", FORGED)
        check(rec["result"] == "bad_credentials", "RFC 1929 failure logged as %r" % rec)

        # HTTP Basic credentials with a control byte are refused before any check (and the name is
        # not logged); a Basic user with CSI, a quote and a backslash stays inside its JSON string.
        def basic_connect(user):
            creds = base64.b64encode(user.encode("utf-8") + b":wrong")
            got = gw.exchange(g.port("login"), b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                              b"Proxy-Authorization: Basic %s\r\n\r\n" % (echo.port, echo.port, creds), 12)
            check(got == b"HTTP/1.1 407", "CONNECT with the Basic user %r was answered %r" % (user, got))

        before = len(g.stdout_lines())
        basic_connect(FORGED)
        rec = g.one_new_record(before, "HTTP Basic user with ESC", settle=0.1)
        check(rec["user"] == "" and rec["result"] == "bad_credentials", "Basic with ESC logged as %r" % rec)
        before = len(g.stdout_lines())
        json_forgery = '\u009b2J\\", "user", "admin'  # no colon: Basic ends the user at one
        basic_connect(json_forgery)
        check_escaped_line(g, before, "HTTP Basic user", "user", json_forgery, ("\\u009b", '\\\\\\"'))

        # A TLS server name (SNI); the session then runs SOCKS5 to the echo server. Python's ssl
        # sends any ASCII as the name, but no C1 control.
        sni = FORGED.replace("\u009b", "")
        before = len(g.stdout_lines())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(g.address("secure"), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as s:
                gw.socks5_handshake(s, "127.0.0.1", echo.port)
                s.sendall(b"ping")
                check(gw.recv_exact(s, 4) == b"ping", "the TLS tunnel did not echo")
        check_escaped_line(g, before, "TLS SNI", "sni", sni, ("\\u001b", "\\u000d\\u000a"))

        check(g.alive(), "edgerelay died")
        g.stop_ok()
        # The operator log: only the gateway's own lines, none with a raw control byte.
        for line in g.stderr_lines():
            check(OPERATOR_RE.match(line) is not None, "stderr has a line the gateway did not write: %r" % line)
            check(not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in line),
                  "stderr has a raw control byte: %r" % line)


# -- 602SQL discovery -------------------------------------------------------------------------

DOOR_CONFIG = """\
listeners:
  - {name: door, bind: "127.0.0.1:0", forward: sql, udp_bind: "127.0.0.1:0"}
backends:
  - {name: sql, host: 127.0.0.1, portbase: %(portbase)d, kind: sql602}
rules:
  - {name: lab, action: allow, from: ["127.0.0.2/32", "127.0.0.5/32"], to: ["backend:sql"]}
  - {name: flood, action: allow, from: ["127.0.0.4/32"], to: ["backend:sql"]}
  - {name: tcp-only, action: allow, from: ["127.0.0.3/32"], to: ["sql:%(tcp)d"]}
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 10s, shutdown_grace: 1s}
log: {level: info, access: json}
"""

UDP_DOOR_RE = re.compile(r" listener: door: 602SQL discovery and breaks on udp (\S+):(\d+)$")


class DiscoveryServer:
    """A 602SQL server's UDP PORTBASE: answers `12 "SIMDB" 00` to the port a query names, from
    another socket (as the server does), and counts the queries it got."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.portbase = self.sock.getsockname()[1]
        self.answer_from = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.answer_from.bind(("127.0.0.1", 0))
        self.queries = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data, (host, _) = self.sock.recvfrom(2048)
            except OSError:
                return
            self.queries += 1
            if data[:1] != b"\x01" or not data.endswith(b"\x00"):
                continue
            try:
                wanted = int(data[1:-1]) & 0xFFFF
            except ValueError:
                wanted = 5002
            self.answer_from.sendto(b"\x12SIMDB\x00", (host, wanted))

    def close(self):
        self.sock.close()
        self.answer_from.close()


class Browser:
    """A client browsing for servers from one loopback source address."""

    def __init__(self, source):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.query = b"\x01" + str(self.sock.getsockname()[1]).encode() + b"\x00"

    def send(self, door):
        self.sock.sendto(self.query, door)

    def replies(self, wait):
        """Every datagram that arrives until none came for `wait` seconds (bounded to 100)."""
        got = []
        self.sock.settimeout(wait)
        while len(got) < 100:
            try:
                data, sender = self.sock.recvfrom(2048)
            except socket.timeout:
                break
            got.append((data, sender))
        return got

    def close(self):
        self.sock.close()


def discovery_datagrams(binary, workdir):
    db = DiscoveryServer()
    g = gw.Gateway(binary, DOOR_CONFIG % {"portbase": db.portbase, "tcp": db.portbase + 1}, workdir)
    browsers = {s: Browser(s) for s in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")}
    with gw.running(g, db, *browsers.values()):
        g.start(listeners=("door",))
        line = g.wait_stderr(UDP_DOOR_RE.pattern, timeout=5)
        check(line is not None, "no udp_bind line on stderr:\n" + g.stderr_text())
        m = UDP_DOOR_RE.search(line)
        door = (m.group(1), int(m.group(2)))
        door_tcp = g.port("door")
        expected_reply = b"\x12SIMDB\x01" + str(door_tcp - 1).encode() + b"\x00"

        # Allowed for backend:sql: the reply names the gateway's door, from the udp_bind socket.
        browsers["127.0.0.2"].send(door)
        got = browsers["127.0.0.2"].replies(3.0)
        check([d for d, _ in got] == [expected_reply], "an allowed source got %r, expected one %r"
              % (got, expected_reply))
        check(got[0][1] == door, "the reply came from %r, not the udp_bind %r" % (got[0][1], door))
        check(db.queries == 1, "the server got %d queries for one allowed query" % db.queries)

        # Allowed only to the TCP port portbase+1, and not allowed at all: nothing comes back, and
        # nothing reaches the server (the gateway is no reflector for either).
        for source in ("127.0.0.3", "127.0.0.6"):
            for _ in range(3):
                browsers[source].send(door)
            got = browsers[source].replies(1.0)
            check(got == [], "a source the rules deny for udp %d got %r" % (db.portbase, got))
        check(db.queries == 1, "denied queries reached the server (%d queries in all)" % db.queries)

        # A flood from one allowed source: at most its bucket is answered.
        flood = 100
        started = time.monotonic()
        for _ in range(flood):
            browsers["127.0.0.4"].send(door)
        sending = time.monotonic() - started
        answers = browsers["127.0.0.4"].replies(1.0)
        allowed = int(20 + 10 * (sending + 1.0)) + 1
        gw.log("flood: %d queries in %.3f s, %d answered (bucket allows %d)" % (flood, sending, len(answers), allowed))
        check(10 <= len(answers) <= allowed, "a flood of %d queries got %d answers, expected 10..%d"
              % (flood, len(answers), allowed))
        check(all(d == expected_reply for d, _ in answers), "a flood answer differs: %r" % answers[:3])
        check(g.wait_stderr(r" warn udp: door: source 127\.0\.0\.4: \d+ datagram\(s\) over", timeout=5),
              "no rate-limit warning for the flooding source:\n" + g.stderr_text())
        # Another allowed source is not slowed by the flooded bucket.
        browsers["127.0.0.5"].send(door)
        got = browsers["127.0.0.5"].replies(3.0)
        check([d for d, _ in got] == [expected_reply], "another source after the flood got %r" % got)
        check(db.queries == 1 + len(answers) + 1, "the server got %d queries, expected %d (only those answered)"
              % (db.queries, 1 + len(answers) + 1))

        check(g.alive(), "edgerelay died")
        g.stop_ok()


def test(binary, workdir):
    gw.run_parts(binary, workdir, (names_at_the_door, client_strings_in_the_logs, discovery_datagrams))


if __name__ == "__main__":
    gw.main(test)
