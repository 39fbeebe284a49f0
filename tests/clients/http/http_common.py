"""Helpers of the HTTP client tests: the shared gateway.py (one folder up), a small origin server
that answers GET with files and POST with the sha256 of the body it received, and gateways with the
HTTP listener config."""

import functools
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gateway as gw  # noqa: E402  (after the path tweak)


class _Handler(gw._QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        h = hashlib.sha256()
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                h.update(data)
                total += len(data)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left > 0:
                data = self.rfile.read(min(left, 65536))
                if not data:
                    break
                h.update(data)
                total += len(data)
                left -= len(data)
        body = ("%d %s\n" % (total, h.hexdigest())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Origin(gw.ServerThread):
    """Serves `root` on loopback, port 0 (GET files, POST -> "<bytes> <sha256>")."""

    def __init__(self, root, host="127.0.0.1"):
        os.makedirs(root, exist_ok=True)
        super().__init__(gw._HTTPServer((host, 0), functools.partial(_Handler, directory=root)))

    def url(self, path):
        return "http://%s:%d/%s" % (self.host, self.port, path.lstrip("/"))


def http_config(auth="none", users=""):
    return gw.config_yaml(protocols="[http, socks5, socks4]", auth=auth, users=users)


def http_gateway(binary, workdir, name, auth="none", users=""):
    """A Gateway with http_config(auth, users) in its own new folder workdir/name."""
    folder = os.path.join(workdir, name)
    os.makedirs(folder)
    return gw.Gateway(binary, http_config(auth=auth, users=users), folder)


def alice_gateway(binary, workdir):
    """An http_gateway in workdir/auth with `auth: password` and the one user alice, password s3cret."""
    users = "  - {name: alice, password: \"%s\"}\n" % gw.make_password_hash(binary, "s3cret")
    return http_gateway(binary, workdir, "auth", auth="password", users=users)
