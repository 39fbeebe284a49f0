#!/usr/bin/env python3
"""Hostile HTTP and refusal cases against the real binary, exact bytes in and out (issue "Trust at
the door"):
- a kept upstream is decided again for each request on the client connection: alice's second
  request reuses it, bob's request on the same connection gets 403 and the origin sees nothing
  more (its connection is closed); a request without credentials gets 407;
- a reload between two requests on one connection decides the second under the new rules
  (recheck_sessions off): 403, nothing reaches the origin; a reload that removes the listener
  answers the kept connection's next request 503;
- a refusal (SOCKS5 0x02, SOCKS4 0x5B, CONNECT 403, a bad SOCKS5 name 0x04, a bad CONNECT
  authority 400, a CONNECT without credentials 407) with 200 KB pipelined behind the request in
  the same send() is read whole, then EOF, never ECONNRESET;
- framing: a request whose Connection names Content-Length, Transfer-Encoding or Host gets 400 and
  the origin sees nothing; such a Connection in a response gives 502; a response with
  Transfer-Encoding gzip and a Content-Length reaches the client without the Content-Length, its
  body read to close."""

import base64
import contextlib
import signal
import socket
import struct
import threading
import time

import gateway as gw
from gateway import check

PAYLOAD = 200 * 1000  # pipelined behind a refused request: more than the gateway reads and drains

# Canned origin responses by path. "close" ones are followed by closing the connection.
RESPONSES = {
    "/ok": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "/conn-cl": (b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello", False),
    "/conn-te": (b"HTTP/1.1 200 OK\r\nConnection: close, transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n", False),
    "/conn-host": (b"HTTP/1.1 200 OK\r\nConnection: Host\r\nContent-Length: 0\r\n\r\n", False),
    # RFC 9112 6.3: the Transfer-Encoding frames the body (until close), not the Content-Length.
    "/gzip-cl": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n" + b"z" * 40, True),
}


class Origin:
    """A loopback HTTP/1.1 origin on raw sockets: answers each request with the canned response its
    path names, keeps the connection unless the response is read to close, and records every
    connection and every request head it receives."""

    def __init__(self):
        self.lock = threading.Lock()
        self.closed = 0            # connections the gateway closed
        self.requests = []         # (connection number, request line)
        self.service = gw.CountingService(serve=self._start, backlog=16)
        self.port = self.service.port

    def _start(self, c, _peer):
        # On the accept thread, so `accepted` is still this connection's number.
        threading.Thread(target=self._serve, args=(c, self.service.accepted), daemon=True).start()

    def _serve(self, c, number):
        c.settimeout(30)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        with self.lock:
                            self.closed += 1
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(buf) < length:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                buf = buf[length:]
                with self.lock:
                    self.requests.append((number, lines[0].decode("latin-1")))
                path = lines[0].split(b" ")[1].decode("latin-1")
                response, close = RESPONSES.get(path, RESPONSES["/ok"])
                c.sendall(response)
                if close:
                    c.close()
                    return
        except OSError:
            pass

    def seen(self):
        with self.lock:
            return self.service.accepted, list(self.requests), self.closed

    def close(self):
        self.service.close()


def read_response(s, until_close=False):
    """One HTTP response from `s`: (status, {lower-case name: value}, body). The body is framed by
    Content-Length, else read to close."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        check(chunk, "the connection closed before a response head (got %r)" % buf)
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "content-length" in fields and not until_close:
        length = int(fields["content-length"])
        while len(body) < length:
            chunk = s.recv(65536)
            check(chunk, "the connection closed inside a response body")
            body += chunk
        return status, fields, body[:length]
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return status, fields, body
        body += chunk


def read_to_end(s):
    """Everything `s` still delivers, and how it ended: "eof", or the error (ECONNRESET...)."""
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return got, "ECONNRESET"
        except socket.timeout:
            return got, "timeout"
        except OSError as e:
            return got, "error %s" % e
        if not chunk:
            return got, "eof"
        got += chunk


def basic(user, password):
    return "Proxy-Authorization: Basic %s\r\n" % base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def get(origin, path, extra=""):
    host = "127.0.0.1:%d" % origin.port
    return ("GET http://%s%s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (host, path, host, extra)).encode()


HEADER = """\
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [http, socks5, socks4], auth: %(auth)s}
%(more_listeners)s%(users)srules:
%(rules)slimits: {handshake_timeout: 3s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 2s}
reload: {recheck_sessions: false}
log: {level: info, access: json}
"""


def config(auth="none", users="", rules="", more_listeners=""):
    return HEADER % {"auth": auth, "users": users, "rules": rules, "more_listeners": more_listeners}


def test_user_changes_on_kept_upstream(binary, workdir, origin):
    users = "users:\n" + "".join('  - {name: %s, password: "%s"}\n' % (u, gw.make_password_hash(binary, u + "-pw"))
                                 for u in ("alice", "bob"))
    rules = '  - {name: alice-only, action: allow, users: [alice], from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
    g = gw.Gateway(binary, config(auth="password", users=users, rules=rules), workdir)
    with gw.running(g):
        g.start()
        port = g.port()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            for n in (1, 2):
                c.sendall(get(origin, "/ok", basic("alice", "alice-pw")))
                status, _, body = read_response(c)
                check(status == 200 and body == b"ok", "alice's request %d: %d %r" % (n, status, body))
            conns, reqs, _ = origin.seen()
            check(conns == 1 and len(reqs) == 2, "alice's two requests should share one upstream: %d connection(s),"
                  " requests %r" % (conns, reqs))
            # Same client connection, same origin, another user: decided again, denied.
            c.sendall(get(origin, "/ok", basic("bob", "bob-pw")))
            status, _, _ = read_response(c)
            check(status == 403, "bob's request on alice's kept upstream was answered %d, want 403" % status)
            rest, how = read_to_end(c)
            check(rest == b"" and how == "eof", "after the 403: %r then %s" % (rest, how))
        time.sleep(0.3)
        conns, reqs, closed = origin.seen()
        check(len(reqs) == 2, "the origin saw bob's request: %r" % reqs)
        check(closed == 1, "the kept upstream was not closed after the denial (%d closed)" % closed)
        recs = g.wait_access_records(3)
        bob = recs[2]
        check(bob["user"] == "bob" and bob["result"] == "denied" and bob["rule"] == "default",
              "bob's request logged %r" % bob)
        check(bob["dialled"] == "127.0.0.1:%d" % origin.port, "bob's request names no dialled address: %r" % bob)
        check(recs[1]["user"] == "alice" and recs[1]["result"] == "ok", "alice's second request logged %r" % recs[1])

        # Without credentials on the kept connection: 407, nothing more upstream.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(get(origin, "/ok", basic("alice", "alice-pw")))
            status, _, _ = read_response(c)
            check(status == 200, "alice's request answered %d" % status)
            c.sendall(get(origin, "/ok"))
            status, _, _ = read_response(c)
            check(status == 407, "a request without credentials on alice's connection answered %d" % status)
        time.sleep(0.3)
        _, reqs, _ = origin.seen()
        check(len(reqs) == 3, "the origin saw a request without credentials: %r" % reqs)
        g.stop_ok(check_log=True)


def reload(g, generation):
    mark = len(g.stderr_lines())
    g.signal(signal.SIGHUP)
    line = g.wait_stderr(r"reload: ok: generation %d\b" % generation, timeout=10, start=mark)
    check(line is not None, "no successful reload to generation %d:\n%s" % (generation, g.stderr_text()))
    time.sleep(0.2)  # the workers take the snapshot just after the reload is logged


def test_reload_between_requests(binary, workdir, origin):
    allow = '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
    deny = '  - {name: origin-closed, action: deny, to: ["127.0.0.1:%d"]}\n' % origin.port + allow
    g = gw.Gateway(binary, config(rules=allow), workdir)
    with gw.running(g):
        g.start()
        port = g.port()
        before = origin.seen()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(get(origin, "/ok"))
            status, _, _ = read_response(c)
            check(status == 200, "the first request answered %d" % status)
            g.write_config(config(rules=deny))
            reload(g, 2)
            c.sendall(get(origin, "/ok"))
            status, _, _ = read_response(c)
            check(status == 403, "the request after a reload that denies the origin was answered %d, want 403"
                  % status)
        time.sleep(0.3)
        after = origin.seen()[1]
        check(len(after) == len(before) + 1, "the origin saw the request the reload denies: %r" % after[len(before):])
        recs = g.wait_access_records(2)
        check(recs[1]["result"] == "denied" and recs[1]["rule"] == "origin-closed",
              "the request after the reload logged %r" % recs[1])

        # A reload that removes the listener: the kept connection takes no new request.
        g.write_config(config(rules=allow))
        reload(g, 3)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(get(origin, "/ok"))
            status, _, _ = read_response(c)
            check(status == 200, "the first request after reload 3 answered %d" % status)
            other = '  - {name: other, bind: "127.0.0.1:0", protocols: [http], auth: none}\n'
            g.write_config(config(rules=allow).replace(
                '  - {name: test, bind: "127.0.0.1:0", protocols: [http, socks5, socks4], auth: none}\n', other))
            reload(g, 4)
            c.sendall(get(origin, "/ok"))
            status, _, _ = read_response(c)
            check(status == 503, "a request after its listener was removed was answered %d, want 503" % status)
        recs = g.wait_access_records(4)
        check(recs[-1].get("detail") == "listener_removed", "the request after the removal logged %r" % recs[-1])
        g.stop_ok(check_log=True)


def refused_with_payload(port, request, what):
    """Sends `request` and PAYLOAD bytes behind it in one send(); returns what the gateway answered
    before the end, after checking that the end was EOF, not a reset."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)  # the one send() takes it all
    s.settimeout(10)
    with s:
        s.connect(("127.0.0.1", port))
        data = request + b"\x00" * PAYLOAD
        sent = s.send(data)
        check(sent > len(request) + 2 * 65536, "%s: the one send() took only %d bytes" % (what, sent))
        got, how = read_to_end(s)
    check(how == "eof", "%s: read %r, then %s instead of EOF" % (what, got, how))
    gw.log("%s: %r, then EOF" % (what, got[:40]))
    return got


def http_reply_complete(got, status, what):
    head, sep, body = got.partition(b"\r\n\r\n")
    check(sep and head.startswith(b"HTTP/1.1 %d " % status), "%s: answered %r, want %d" % (what, got, status))
    length = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    check(length and len(body) == length[0], "%s: the reply body is cut: %r" % (what, got))


def test_refusals_linger(binary, workdir, origin):
    rules = ('  - {name: origin-denied, action: deny, to: ["127.0.0.1:%d"]}\n' % origin.port
             + '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n')
    locked = '  - {name: locked, bind: "127.0.0.1:0", protocols: [http], auth: password}\n'
    users = 'users:\n  - {name: alice, password: "%s"}\n' % gw.make_password_hash(binary, "alice-pw")
    g = gw.Gateway(binary, config(rules=rules, more_listeners=locked, users=users), workdir)
    with gw.running(g):
        g.start(listeners=("test", "locked"))
        port = g.port()
        target = struct.pack(">H", origin.port) + bytes([127, 0, 0, 1])
        connections = origin.seen()[0]

        got = refused_with_payload(port, gw.socks5_request(1, target[2:], origin.port), "SOCKS5 to a denied target")
        check(len(got) == 12 and got[:2] == b"\x05\x00" and got[2:4] == b"\x05\x02",
              "SOCKS5 to a denied target: answered %r, want 05 00 then a 10-byte reply with REP 0x02" % got)

        got = refused_with_payload(port, b"\x04\x01" + target + b"\x00", "SOCKS4 to a denied target")
        check(len(got) == 8 and got[:2] == b"\x00\x5b", "SOCKS4 to a denied target: answered %r, want 00 5B" % got)

        authority = b"127.0.0.1:%d" % origin.port
        got = refused_with_payload(port, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority),
                                   "CONNECT to a denied target")
        http_reply_complete(got, 403, "CONNECT to a denied target")

        # Refusals of the door itself: a name no codec accepts, a login missing.
        name = b"bad\x00name.example"
        got = refused_with_payload(port, gw.socks5_domain(name, 80), "SOCKS5 with a NUL in the name")
        check(len(got) == 12 and got[2:4] == b"\x05\x04", "SOCKS5 bad name: answered %r, want REP 0x04" % got)
        got = refused_with_payload(port, b"CONNECT bad!name:80 HTTP/1.1\r\n\r\n", "CONNECT to a bad name")
        http_reply_complete(got, 400, "CONNECT to a bad name")
        got = refused_with_payload(g.port("locked"), b"CONNECT %s HTTP/1.1\r\n\r\n" % authority,
                                   "CONNECT without credentials")
        http_reply_complete(got, 407, "CONNECT without credentials")

        check(origin.seen()[0] == connections, "a refused session reached the origin")
        check(g.alive(), "edgerelay died")
        g.stop_ok(check_log=True)


def test_framing(binary, workdir, origin):
    rules = '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
    g = gw.Gateway(binary, config(rules=rules), workdir)
    with gw.running(g):
        g.start()
        port = g.port()
        host = "127.0.0.1:%d" % origin.port
        before = origin.seen()
        smuggling = [
            "POST http://%s/ok HTTP/1.1\r\nHost: %s\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
            "POST http://%s/ok HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive, Transfer-Encoding\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET http://%s/ok HTTP/1.1\r\nHost: %s\r\nConnection: Host\r\n\r\n",
        ]
        for raw in smuggling:
            request = (raw % (host, host)).encode()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(request)
                status, _, _ = read_response(c)
                check(status == 400, "%r was answered %d, want 400" % (request, status))
                rest, how = read_to_end(c)
                check(how == "eof", "after the 400 for %r: %r then %s" % (request, rest, how))
        time.sleep(0.3)
        check(origin.seen()[:2] == before[:2], "the origin saw a request whose Connection names a framing field: %r"
              % (origin.seen()[1][len(before[1]):],))

        for path in ("/conn-cl", "/conn-te", "/conn-host"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(get(origin, path))
                status, _, body = read_response(c)
                check(status == 502, "an origin response %r was answered %d %r, want 502" % (RESPONSES[path][0], status,
                                                                                            body))

        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(get(origin, "/gzip-cl"))
            status, fields, body = read_response(c, until_close=True)
            check(status == 200, "the gzip response was answered %d" % status)
            check("content-length" not in fields, "a Content-Length beside Transfer-Encoding gzip was passed on: %r"
                  % fields)
            check(body == b"z" * 40, "the gzip body read to close is %r, want the origin's 40 bytes" % body)
        g.stop_ok(check_log=True)


def test(binary, workdir):
    with contextlib.closing(Origin()) as origin:
        gw.run_parts(binary, workdir, (test_user_changes_on_kept_upstream, test_reload_between_requests,
                                       test_refusals_linger, test_framing), origin)


if __name__ == "__main__":
    gw.main(test)
