#!/usr/bin/env python3
"""The stock 602SQL Windows client behind a SOCKS4 firewall names the server by its IPv4 address.
With the backend's host written as a name (`localhost`), a SOCKS4 CONNECT to 127.0.0.1:portbase+1
is still that backend's session: the rules see `backend:sql` (the only rule, so a session taken for
a plain address would be denied), the session leaves from the backend's egress address, and a
break the client sends to the listener's udp_bind reaches the server's UDP portbase naming that
egress address. A TCP CONNECT to 127.0.0.1:portbase is no session of the backend and is denied."""

import re
import socket
import struct
import threading

import gateway as gw
from gateway import check

CONFIG = """\
listeners:
  - {name: test, bind: "127.0.0.1:0", protocols: [socks4], auth: none, udp_bind: "127.0.0.1:0"}
backends:
  - {name: sql, host: localhost, portbase: %(portbase)d, kind: sql602, egress: ["127.0.0.10-127.0.0.11"]}
rules:
  - {name: sql-service, action: allow, to: ["backend:sql"]}
limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 2s}
log: {level: info, access: json}
"""

UDP_DOOR_RE = re.compile(r"listener: test: 602SQL discovery and breaks on udp ([\d.]+):(\d+)")


class Server:
    """The 602SQL server's two ports on 127.0.0.1: TCP portbase+1 (records each peer, echoes) and
    UDP portbase (records each datagram)."""

    def __init__(self):
        self.peers = []
        for _ in range(50):  # bounded: a free TCP port whose UDP port below is free too
            self.tcp = gw.CountingService(serve=self._serve, backlog=16)
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.udp.bind(("127.0.0.1", self.tcp.port - 1))
                break
            except OSError:
                self.tcp.close()
                self.udp.close()
        else:
            raise gw.TestFailure("no free TCP port with a free UDP port below it")
        self.udp.settimeout(5)
        self.portbase = self.tcp.port - 1

    def _serve(self, c, peer):
        self.peers.append(peer[0])
        threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        """Echoes until the client's end, then closes, so the session ends (and is logged) at once."""
        try:
            while True:
                data = c.recv(4096)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        c.close()

    def close(self):
        self.tcp.close()
        self.udp.close()


def socks4_connect(port, address, target_port):
    """A SOCKS4 CONNECT to address:target_port with an empty USERID; returns the socket and the
    8-byte reply."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x04\x01" + struct.pack(">H", target_port) + socket.inet_aton(address) + b"\x00")
    return s, gw.recv_exact(s, 8)


def break_datagram(address):
    """02, the address's four bytes read as a little-endian number in decimal, 00 (docs/602sql.md)."""
    return b"\x02" + str(struct.unpack("<I", socket.inet_aton(address))[0]).encode() + b"\x00"


def test(binary, workdir):
    db = Server()
    g = gw.Gateway(binary, CONFIG % {"portbase": db.portbase}, workdir)
    with gw.running(g, db):
        g.start()
        port = g.port()
        door = UDP_DOOR_RE.search(g.wait_stderr(UDP_DOOR_RE.pattern) or "")
        check(door is not None, "no udp_bind line in the operator log")
        breaks_at = (door.group(1), int(door.group(2)))

        # The session the Windows client opens: the server's address and portbase + 1.
        before = len(g.access_records())
        client, reply = socks4_connect(port, "127.0.0.1", db.portbase + 1)
        check(reply[:2] == b"\x00\x5a", "SOCKS4 CONNECT 127.0.0.1:portbase+1 was answered %r, want 00 5A" % reply)
        client.sendall(b"select 1")
        check(gw.recv_exact(client, 8) == b"select 1", "the session does not reach the server")
        check(db.peers == ["127.0.0.10"], "the server saw the session from %r, want the egress 127.0.0.10" % db.peers)

        # Its break, sent from the client's address naming it, goes out naming the egress address.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
            b.bind(("127.0.0.1", 0))
            b.sendto(break_datagram("127.0.0.1"), breaks_at)
        try:
            got, sender = db.udp.recvfrom(64)
        except socket.timeout:
            raise gw.TestFailure("the break never reached the server's UDP portbase")
        check(got == break_datagram("127.0.0.10"), "the server got the break %r, want %r"
              % (got, break_datagram("127.0.0.10")))
        gw.log("break from", sender, ":", got)

        client.close()
        rec = g.one_new_record(before, "SOCKS4 to the backend's address")
        check(rec["result"] == "ok" and rec["rule"] == "sql-service",
              "the session was logged with result %r by rule %r, want ok by sql-service" % (rec["result"], rec["rule"]))
        check(rec["target"] == "127.0.0.1:%d" % (db.portbase + 1), "target logged as %r" % rec["target"])
        check(rec["dialled"] == "127.0.0.1:%d" % (db.portbase + 1), "dialled logged as %r" % rec["dialled"])

        # TCP to portbase is not the backend's service: no rule allows the plain address.
        before = len(g.access_records())
        other, reply = socks4_connect(port, "127.0.0.1", db.portbase)
        other.close()
        check(reply[:2] == b"\x00\x5b", "SOCKS4 CONNECT 127.0.0.1:portbase was answered %r, want 00 5B" % reply)
        rec = g.one_new_record(before, "SOCKS4 to the backend's portbase")
        check(rec["result"] == "denied" and rec["rule"] == "default", "portbase logged as %r" % rec)
        check(db.peers == ["127.0.0.10"], "the server was reached again: %r" % db.peers)

        check(g.alive(), "edgerelay died")
        g.stop_ok(check_log=True)


if __name__ == "__main__":
    gw.main(test)
