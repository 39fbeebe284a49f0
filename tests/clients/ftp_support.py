#!/usr/bin/env python3
"""FTP through edgerelay, the shared pieces: a real FTP server (Debian's python3-pyftpdlib) on
127.0.0.2, a firewall that lets the FTP client's user reach only the gateway (iptables owner rules
in the test's own network namespace), the client run as that user, and a SOCKS5 BIND client for
Python's ftplib (active mode through the gateway).

The server is on 127.0.0.2 and the gateway on 127.0.0.1: Dante's client sends connections to its
SOCKS server's own address directly, never through it, so the two must differ.
"""

import ftplib
import os
import socket
import struct
import subprocess
import sys
import time

import gateway as gw
from gateway import check

FTP_HOST = "127.0.0.2"
FTP_USER = "ftpuser"
FTP_PASSWORD = "ftp-secret"
CLIENT_UID = 65534  # nobody: the firewalled FTP client's user
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's modules (pyftpdlib) are installed for it

_SERVER_SCRIPT = r"""
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
root, user, password, host, first, last = sys.argv[1:7]
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elradfmwMT")
class Handler(FTPHandler):
    authorizer = auth
    passive_ports = range(int(first), int(last) + 1)
    # Active mode: the data connection goes to the PORT address, which must be the control
    # connection's peer (the gateway) - pyftpdlib's default, kept on purpose.
    permit_foreign_addresses = False
server = FTPServer((host, 0), Handler)
print("listening", server.address[1], flush=True)
server.serve_forever(timeout=0.5)
"""


def require_private_netns():
    """The firewall rules go into the test's own namespace, never the machine's: fail (not skip)
    unless in_netns.sh put this test in a fresh one and it runs as root."""
    check(os.environ.get("EDGERELAY_NETNS") == "1",
          "this test needs its own network namespace (tests/support/in_netns.sh, as root): "
          "EDGERELAY_NETNS=%r" % os.environ.get("EDGERELAY_NETNS"))
    check(os.geteuid() == 0, "this test needs root inside its namespace (iptables, setpriv)")
    # A namespace in_netns.sh made has loopback and nothing else; the machine's has more.
    interfaces = sorted(name for _, name in socket.if_nameindex())
    check(interfaces == ["lo"], "refusing to add firewall rules: this namespace has interfaces %s, "
          "so it may be the machine's own" % interfaces)
    for tool in ("iptables", "setpriv"):
        check(subprocess.run(["which", tool], capture_output=True).returncode == 0, "%s is not installed" % tool)


def firewall_client(gateway_port):
    """iptables in this namespace: CLIENT_UID may open TCP connections to 127.0.0.1:gateway_port
    and nothing else (the FTP server, its data ports, any other address are rejected)."""
    rules = [
        ["-A", "OUTPUT", "-o", "lo", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(gateway_port),
         "-m", "owner", "--uid-owner", str(CLIENT_UID), "-j", "ACCEPT"],
        ["-A", "OUTPUT", "-m", "owner", "--uid-owner", str(CLIENT_UID), "-j", "REJECT"],
    ]
    for r in rules:
        out = gw.run(["iptables"] + r)
        check(out.returncode == 0, "iptables %s failed: %s" % (" ".join(r), out.stderr))
    gw.log("firewall:", gw.run(["iptables", "-S", "OUTPUT"]).stdout.strip().replace("\n", " | "))


def as_client(cmd):
    """`cmd` run as the firewalled user, no supplementary groups."""
    return ["setpriv", "--reuid=%d" % CLIENT_UID, "--regid=%d" % CLIENT_UID, "--clear-groups"] + list(cmd)


def run_as_client(cmd, env=None, timeout=60):
    full_env = gw.clean_env()
    full_env.update(env or {})
    return subprocess.run(as_client(cmd), capture_output=True, text=True, timeout=timeout, env=full_env)


def check_direct_blocked(ftp_port):
    """The client's user cannot reach the FTP server itself: only the gateway gets it there."""
    probe = ("import socket,sys\n"
             "try:\n socket.create_connection((%r, %d), timeout=3)\nexcept OSError as e:\n"
             " print('blocked', e.errno); sys.exit(0)\nprint('connected'); sys.exit(1)\n" % (FTP_HOST, ftp_port))
    r = run_as_client([SYSTEM_PYTHON, "-c", probe], timeout=20)
    check(r.returncode == 0, "the firewalled client reached the FTP server directly: %s %s" % (r.stdout, r.stderr))
    gw.log("direct connection from uid %d to %s:%d:" % (CLIENT_UID, FTP_HOST, ftp_port), r.stdout.strip())


class FtpServer:
    """pyftpdlib on FTP_HOST, an ephemeral control port, passive ports first..last, one user
    with read and write rights on `root`."""

    def __init__(self, root, passive=(30000, 30009)):
        self.root = root
        self.passive = passive
        os.makedirs(root, exist_ok=True)
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-c", _SERVER_SCRIPT, root, FTP_USER, FTP_PASSWORD, FTP_HOST, str(passive[0]),
             str(passive[1])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=gw.die_with_parent)
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            raise gw.TestFailure("pyftpdlib did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(line.split()[1])
        gw.log("pyftpdlib on %s:%d, passive ports %d-%d" % (FTP_HOST, self.port, passive[0], passive[1]))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def client_dir(workdir):
    """A folder the firewalled user can write, for its downloads, uploads and HOME."""
    path = os.path.join(workdir, "client")
    os.makedirs(path, exist_ok=True)
    os.chmod(workdir, 0o755)
    os.chmod(path, 0o777)
    return path


def make_file(path, size, seed):
    data = _pattern(size, seed)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return data


def _pattern(size, seed):
    # Deterministic and incompressible enough: a 64-bit LCG, 8 bytes a step.
    out = bytearray()
    x = seed * 6364136223846793005 + 1442695040888963407
    while len(out) < size:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out += struct.pack("<Q", x)
    return bytes(out[:size])


def sha256_of(path):
    return gw.sha256_file(path)


# -- a SOCKS5 BIND client for ftplib --------------------------------------------------------------

def _read_reply(s):
    ver, rep, _, atyp = gw.recv_exact(s, 4)
    check(ver == 5, "SOCKS5 reply version %d" % ver)
    if atyp == 1:
        raw = gw.recv_exact(s, 6)
        host, port = socket.inet_ntoa(raw[:4]), struct.unpack(">H", raw[4:])[0]
    elif atyp == 4:
        raw = gw.recv_exact(s, 18)
        host, port = socket.inet_ntop(socket.AF_INET6, raw[:16]), struct.unpack(">H", raw[16:])[0]
    else:
        raw = gw.recv_exact(s, gw.recv_exact(s, 1)[0] + 2)
        host, port = raw[:-2].decode(), struct.unpack(">H", raw[-2:])[0]
    return rep, (host, port)


class Socks5Bind:
    """RFC 1928 BIND through `proxy` for a connection from `peer_host`: bound is the first reply's
    address (where the peer must connect); accept() reads the second reply and returns the
    connection, as a listening socket's accept() would."""

    def __init__(self, proxy, peer_host, timeout=20):
        self.sock = socket.create_connection(proxy, timeout=timeout)
        self.sock.sendall(b"\x05\x01\x00")
        check(gw.recv_exact(self.sock, 2) == b"\x05\x00", "SOCKS5 method refused")
        self.sock.sendall(b"\x05\x02\x00\x01" + socket.inet_aton(peer_host) + struct.pack(">H", 0))
        rep, self.bound = _read_reply(self.sock)
        if rep != 0:
            self.sock.close()
            raise gw.SocksError("BIND's first reply 0x%02x" % rep, code=rep)

    def accept(self):
        rep, peer = _read_reply(self.sock)
        if rep != 0:
            raise gw.SocksError("BIND's second reply 0x%02x" % rep, code=rep)
        return self.sock, peer

    def close(self):
        pass  # the accepted connection is this socket: ftplib closes it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class SocksFTP(ftplib.FTP):
    """ftplib.FTP whose control connection is a SOCKS5 CONNECT and whose active-mode data
    connections are SOCKS5 BINDs, all through `proxy`."""

    def __init__(self, proxy, **kwargs):
        self.proxy = proxy
        super().__init__(**kwargs)

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        self.sock = gw.socks5_connect(self.proxy, host, port, timeout=self.timeout)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def makeport(self):
        binding = Socks5Bind(self.proxy, self.host)
        host, port = binding.bound
        self.sendport(host, port)
        return binding


def main_ftplib_client():
    """Run as the firewalled user: `ftp_support.py PROXY_PORT FTP_PORT DOWNLOAD_NAME LOCAL_OUT UPLOAD_SRC
    UPLOAD_NAME`: an active-mode download and upload with ftplib over SOCKS5 CONNECT and BIND."""
    proxy_port, ftp_port, name, out, src, up = sys.argv[2:8]
    ftp = SocksFTP(("127.0.0.1", int(proxy_port)), timeout=20)
    ftp.set_pasv(False)
    ftp.connect(FTP_HOST, int(ftp_port))
    ftp.login(FTP_USER, FTP_PASSWORD)
    with open(out, "wb") as f:
        ftp.retrbinary("RETR " + name, f.write)
    with open(src, "rb") as f:
        ftp.storbinary("STOR " + up, f)
    listing = []
    ftp.retrlines("LIST", listing.append)
    ftp.quit()
    print("listing:", " / ".join(listing), flush=True)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "ftplib-client":
    main_ftplib_client()
