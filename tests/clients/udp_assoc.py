#!/usr/bin/env python3
"""SOCKS5 UDP ASSOCIATE helpers for the clients tests: the client side of an association (RFC 1928
section 7) with exact datagram headers, and a loopback UDP service that counts what it receives.

Standard library only. Every receive is bounded in time.
"""

import socket
import struct
import threading

from gateway import check, recv_exact


def header_v4(address, port, frag=0):
    """RSV RSV FRAG 01 a.b.c.d PORT"""
    return bytes([0, 0, frag, 1]) + socket.inet_aton(address) + struct.pack(">H", port)


def header_v6(address, port, frag=0):
    """RSV RSV FRAG 04 16 bytes PORT"""
    return bytes([0, 0, frag, 4]) + socket.inet_pton(socket.AF_INET6, address) + struct.pack(">H", port)


def header_domain(name, port, frag=0):
    """RSV RSV FRAG 03 LEN NAME PORT; `name` is bytes, sent exactly as given."""
    return bytes([0, 0, frag, 3, len(name)]) + name + struct.pack(">H", port)


class Association:
    """One UDP association: its control TCP connection and the client's UDP socket on 127.0.0.1."""

    def __init__(self, proxy, timeout=5):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.control = socket.create_connection(proxy, timeout=timeout)
        try:
            self.relay = self._associate()
        except BaseException:
            self.close()
            raise

    def _associate(self):
        s = self.control
        s.sendall(b"\x05\x01\x00")
        check(recv_exact(s, 2) == b"\x05\x00", "SOCKS5 method selection refused")
        host, port = self.udp.getsockname()
        s.sendall(b"\x05\x03\x00\x01" + socket.inet_aton(host) + struct.pack(">H", port))
        reply = recv_exact(s, 10)
        check(reply[:4] == b"\x05\x00\x00\x01", "UDP ASSOCIATE answered %r" % reply)
        relay = (socket.inet_ntoa(reply[4:8]), struct.unpack(">H", reply[8:10])[0])
        check(relay[1] != 0, "UDP ASSOCIATE gave relay port 0")
        return relay

    def send(self, header, payload):
        self.udp.sendto(header + payload, self.relay)

    def receive(self, timeout):
        """One datagram from the relay, or None within `timeout` seconds."""
        self.udp.settimeout(timeout)
        try:
            data, sender = self.udp.recvfrom(70000)
        except socket.timeout:
            return None
        check(sender == self.relay, "datagram from %r, not the relay %r" % (sender, self.relay))
        return data

    def control_closed(self, timeout):
        """True when the gateway closes the control connection within `timeout` seconds."""
        self.control.settimeout(timeout)
        try:
            while True:
                if not self.control.recv(512):
                    return True
        except socket.timeout:
            return False
        except OSError:
            return True  # reset: closed too

    def close(self):
        self.control.close()
        self.udp.close()


class UdpService:
    """A UDP service on loopback (port 0) on a daemon thread: counts and keeps every datagram it
    receives and echoes it back to its sender."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        self._received = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, sender = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._received.append(data)
            try:
                self.sock.sendto(data, sender)
            except OSError:
                pass

    def received(self):
        with self._lock:
            return list(self._received)

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()
