"""A small client of the gateway's HTTP-polling door (docs/tunnel-protocol.md, "HTTP polling"),
written from the document with Python's http.client only."""

import base64
import http.client
import socket
import threading

from gateway import check


class PollError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %r" % (status, body))
        self.status = status
        self.body = body


class Connection(http.client.HTTPConnection):
    """An HTTP connection from a chosen source address."""

    def __init__(self, host, port, source=None, timeout=30):
        super().__init__(host, port, timeout=timeout, source_address=(source, 0) if source else None)


class PollClient:
    def __init__(self, host, port, path="/edgerelay", user=None, password=None, source=None, fresh=False):
        self.host, self.port, self.path, self.source = host, port, path, source
        self.auth = None
        if user is not None:
            self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.fresh = fresh  # a new connection for every request (spreads them over workers)
        self._conns = {}
        self.id = None

    def request(self, method, url, body=b"", headers=None, lane="up"):
        h = {"Content-Length": str(len(body))}
        if self.auth:
            h["Authorization"] = self.auth
        h.update(headers or {})
        conn = self._conns.get(lane)
        reused = conn is not None and not self.fresh
        if not reused:
            if conn is not None:
                conn.close()
            conn = Connection(self.host, self.port, self.source)
            self._conns[lane] = conn
        try:
            conn.request(method, self.path + url, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            self._conns.pop(lane, None)
            if not reused:
                raise
            # The server closed the kept connection while it idled: any HTTP client sends again.
            return self.request(method, url, body, headers, lane)
        except (http.client.HTTPException, OSError):
            conn.close()
            self._conns.pop(lane, None)
            raise
        check(r.getheader("Cache-Control") == "no-store", "response without Cache-Control: no-store: %r" %
              r.getheaders())
        check(r.getheader("Transfer-Encoding") is None, "chunked response: %r" % r.getheaders())
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            self._conns.pop(lane, None)
        return r.status, r, data

    def open(self, target):
        status, r, data = self.request("POST", "/poll/open?target=" + target, lane="open")
        if status != 200:
            raise PollError(status, data)
        self.id = data.decode()
        check(len(self.id) == 32 and all(c in "0123456789abcdef" for c in self.id), "bad session id %r" % data)
        return self.id

    def up(self, seq, data, control=None, sid=None):
        headers = {"Edgerelay-Control": control} if control else {}
        return self.request("POST", "/poll/%s/up?seq=%d" % (sid or self.id, seq), data, headers, lane="up")

    def down(self, seq, sid=None):
        return self.request("GET", "/poll/%s/down?seq=%d" % (sid or self.id, seq), lane="down")

    def close_session(self):
        return self.request("POST", "/poll/%s/close" % self.id, lane="up")

    def close(self):
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    # -- a whole stream --

    def send_all(self, data, chunk=65536, fin=True):
        seq = 0
        off = 0
        while off < len(data) or (fin and seq == 0 and not data):
            piece = data[off:off + chunk]
            last = off + len(piece) >= len(data)
            status, r, body = self.up(seq, piece, "fin" if (fin and last) else None)
            if status == 503:
                continue  # not accepted: the same seq again
            if status != 204:
                raise PollError(status, body)
            check(r.getheader("Edgerelay-Ack") == str(seq), "ack %r for seq %d" % (r.getheader("Edgerelay-Ack"), seq))
            seq += 1
            off += len(piece)
            if last:
                break
        return seq

    def receive_all(self, limit_polls=100000):
        out = bytearray()
        seq = 0
        for _ in range(limit_polls):
            status, r, body = self.down(seq)
            if status != 200:
                raise PollError(status, body)
            check(r.getheader("Edgerelay-Seq") == str(seq), "seq %r for %d" % (r.getheader("Edgerelay-Seq"), seq))
            out += body
            if r.getheader("Edgerelay-Control") == "fin":
                return bytes(out)
            if body:
                seq += 1
        raise AssertionError("no fin after %d polls" % limit_polls)


def both_ways(client, data):
    """Sends `data` with a fin while receiving until the gateway's fin; returns what came down."""
    got = {}

    def receiver():
        try:
            got["data"] = client.receive_all()
        except Exception as e:  # reported by the caller
            got["error"] = e

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    client.send_all(data)
    t.join(120)
    check(not t.is_alive(), "receiving did not end")
    if "error" in got:
        raise got["error"]
    return got["data"]
