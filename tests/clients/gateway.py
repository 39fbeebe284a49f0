#!/usr/bin/env python3
"""Shared helpers for the `clients` tests: run the real edgerelay binary with a temporary config,
read back the ports it bound (port 0), collect its stdout (access log) and stderr (operator log),
stop it with bounded waits; local HTTP, echo and connection-counting servers on loopback; a tiny
SOCKS5 client and raw request bytes for hostile ones; curl.

Standard library only. Every wait is bounded in time; every child process is killed on the way out.
"""

import contextlib
import ctypes
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

# The fields docs/config.md gives every access-log line; `detail` may be added.
ACCESS_FIELDS = {"ts", "listener", "client", "user", "protocol", "target", "dialled", "rule", "result",
                 "bytes_up", "bytes_down", "duration_ms"}
OPTIONAL_ACCESS_FIELDS = {"detail", "via", "claimed_user", "command", "proxied_by", "proxy_authority", "proxy_tls",
                          "proxy_tls_cn"}

LISTENING_RE = re.compile(r" listener: (\S+): listening on (.+):(\d+) with (\d+) worker\(s\)")

MIB = 1024 * 1024


class TestFailure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def log(*parts):
    print("[clients]", *parts, flush=True)


def binary_from_argv():
    if len(sys.argv) < 2:
        sys.exit("usage: %s /path/to/edgerelay" % sys.argv[0])
    path = os.path.abspath(sys.argv[1])
    check(os.access(path, os.X_OK), "edgerelay binary not executable: %s" % path)
    return path


def clean_env():
    """The environment for children: no proxy variables that could send curl elsewhere."""
    env = dict(os.environ)
    for k in list(env):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy", "socks_proxy"):
            del env[k]
    env["LC_ALL"] = "C"
    return env


try:
    # Resolved here, in the parent: a child between fork and exec should only make the call.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def die_with_parent():
    """In a child before exec: SIGKILL it if the test process dies (say, killed by a CTest timeout),
    so no gateway outlives its test even when the test's own clean-up cannot run."""
    if _prctl is not None:
        _prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


def wait_until(predicate, timeout, interval=0.02):
    """Polls predicate until it returns something truthy or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def run(cmd, timeout=30, input_text=None):
    """Runs a short command to completion (bounded); returns CompletedProcess with text output."""
    return subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout, env=clean_env())


def make_password_hash(binary, password):
    r = run([binary, "passwd"], timeout=30, input_text=password + "\n")
    check(r.returncode == 0, "edgerelay passwd exited %d: %s" % (r.returncode, r.stderr))
    h = r.stdout.strip()
    check(h.startswith("pbkdf2-sha256$"), "edgerelay passwd printed %r" % r.stdout)
    check(password not in r.stdout and password not in r.stderr, "edgerelay passwd echoed the password")
    return h


TOP_LEVEL_IDENTITY_RE = re.compile(r"^(user|allow_root):", re.M)


def allow_root_when_root(text):
    """CI runs the tests as root, and edgerelay refuses to serve as root unless its config says
    `allow_root: true` (or names a `user:` to drop to): a config that says neither gets the former.
    Tests of the refusal itself write `allow_root: false`."""
    if os.geteuid() != 0 or TOP_LEVEL_IDENTITY_RE.search(text) or text.lstrip().startswith("{"):
        return text
    return text + ("" if text.endswith("\n") else "\n") + "allow_root: true\n"


class Gateway:
    """One edgerelay process with a config file in a temporary directory."""

    def __init__(self, binary, config_text, workdir, workers=2, preexec_fn=None, name="edgerelay.yaml"):
        self.binary = binary
        self.workdir = workdir
        self.config_path = os.path.join(workdir, name)
        self.workers = workers
        self.preexec_fn = preexec_fn
        self.command_prefix = []  # a launcher that execs edgerelay (systemd-socket-activate ...)
        self.extra_env = {}       # variables for the child on top of clean_env() (NOTIFY_SOCKET ...)
        self.pass_fds = ()        # descriptors the child inherits (a launcher's sockets)
        self.proc = None
        self.ports = {}          # listener name -> (host, port)
        self._lock = threading.Lock()
        self._out = []           # stdout lines (access log)
        self._err = []           # stderr lines (operator log)
        self._readers = []
        # Called from the reader thread with each stderr line as soon as it is read (or None).
        self.on_stderr_line = None
        self.write_config(config_text)

    def write_config(self, text):
        text = allow_root_when_root(text)
        # Write-then-rename so a SIGHUP never sees half a file.
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    # -- process --------------------------------------------------------------------------------

    def start(self, listeners=("test",), timeout=15, wait_signal_handlers=True):
        """Starts edgerelay and waits until every listener reported its port. With
        wait_signal_handlers it also waits until the process catches SIGHUP and SIGTERM (SigCgt in
        /proc/PID/status), so tests that signal it do not race its start-up; the start-up window
        itself is tested on its own (test_signal_at_startup.py)."""
        cmd = list(self.command_prefix) + [self.binary, "--config", self.config_path]
        if self.workers is not None:  # None: the config's `workers` (default auto)
            cmd += ["--workers", str(self.workers)]
        log("starting", " ".join(cmd))
        user_preexec = self.preexec_fn

        def preexec():
            die_with_parent()
            if user_preexec is not None:
                user_preexec()

        env = clean_env()
        env.update(self.extra_env)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, preexec_fn=preexec, cwd=self.workdir, pass_fds=self.pass_fds)
        for stream, sink in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            t = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            t.start()
            self._readers.append(t)

        def all_bound():
            for line in self.stderr_lines():
                m = LISTENING_RE.search(line)
                if m:
                    host = m.group(2)
                    if host.startswith("[") and host.endswith("]"):
                        host = host[1:-1]
                    self.ports[m.group(1)] = (host, int(m.group(3)))
            if self.proc.poll() is not None:
                return "exited"
            return all(n in self.ports for n in listeners)

        state = wait_until(all_bound, timeout)
        if state is not True:
            self.kill()
            raise TestFailure("edgerelay did not report listening on %s within %ss (state %r); stderr:\n%s"
                              % (list(listeners), timeout, state, self.stderr_text()))
        log("listening:", self.ports)
        if wait_signal_handlers:
            wanted = {signal.SIGHUP, signal.SIGTERM}
            if not wait_until(lambda: wanted <= signals_caught(self.proc.pid), timeout):
                caught = signals_caught(self.proc.pid)
                self.kill()
                raise TestFailure("edgerelay did not install handlers for SIGHUP and SIGTERM within %ss "
                                  "(caught: %s); stderr:\n%s" % (timeout, sorted(caught), self.stderr_text()))
        return self

    def _pump(self, stream, sink):
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    sink.append(line)
                hook = self.on_stderr_line
                if hook is not None and sink is self._err:
                    hook(line)
        except (ValueError, OSError):
            pass

    @property
    def pid(self):
        return self.proc.pid

    def port(self, listener="test"):
        return self.ports[listener][1]

    def address(self, listener="test"):
        return self.ports[listener]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signo):
        check(self.alive(), "edgerelay is not running (exit %r); stderr:\n%s"
              % (self.proc.poll() if self.proc else None, self.stderr_text()))
        self.proc.send_signal(signo)

    def wait_exit(self, timeout):
        """Waits up to timeout seconds for the process to exit; returns its status or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def finish_readers(self, timeout=5):
        for t in self._readers:
            t.join(timeout)

    def stop(self, timeout=10):
        """SIGTERM, bounded wait, then SIGKILL. Returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        status = self.proc.poll()
        if status is None:
            self.proc.send_signal(signal.SIGTERM)
            status = self.wait_exit(timeout)
            if status is None:
                log("edgerelay did not exit within %ss of SIGTERM: killing" % timeout)
                self.kill()
                status = None
        self.finish_readers()
        return status

    def stop_ok(self, timeout=10, what="", check_log=False):
        """stop(), then fails the test unless edgerelay exited with status 0 (`what` prefixes the
        message). With check_log every access-log line is then checked (check_access_record): the
        lines of sessions the shutdown ended are written only now."""
        status = self.stop(timeout=timeout)
        check(status == 0, "%sedgerelay exit status %r after SIGTERM, expected 0" % (what, status))
        if check_log:
            for rec in self.access_records():
                check_access_record(rec)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.finish_readers(2)

    # -- output ---------------------------------------------------------------------------------

    def stdout_lines(self):
        with self._lock:
            return list(self._out)

    def stderr_lines(self):
        with self._lock:
            return list(self._err)

    def stderr_text(self):
        return "\n".join(self.stderr_lines())

    def stdout_text(self):
        return "\n".join(self.stdout_lines())

    def access_records(self):
        """Every stdout line parsed as JSON; a line that is not one JSON object fails the test."""
        records = []
        for line in self.stdout_lines():
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise TestFailure("access-log line is not JSON (%s): %r" % (e, line))
            check(isinstance(rec, dict), "access-log line is not a JSON object: %r" % line)
            records.append(rec)
        return records

    def wait_access_records(self, count, timeout=10):
        """Waits until at least count access-log lines exist; returns them all."""
        wait_until(lambda: len(self.stdout_lines()) >= count, timeout)
        recs = self.access_records()
        check(len(recs) >= count, "expected at least %d access-log line(s) within %ss, got %d:\n%s"
              % (count, timeout, len(recs), self.stdout_text()))
        return recs

    def wait_stderr(self, pattern, timeout=10, start=0):
        """Waits for a stderr line (from index start) matching the regex; returns it or None."""
        rx = re.compile(pattern)

        def find():
            for line in self.stderr_lines()[start:]:
                if rx.search(line):
                    return line
            return None

        return wait_until(find, timeout)

    def one_new_record(self, before, what, settle=0.3):
        """The one access-log line written after the first `before`: waits for it, then `settle`
        seconds more so that a second line would show; checks its fields and logs it."""
        self.wait_access_records(before + 1, timeout=10)
        time.sleep(settle)
        new = self.access_records()[before:]
        check(len(new) == 1, "%s: expected exactly one new access-log line, got %d: %r" % (what, len(new), new))
        check_access_record(new[0])
        log("%s:" % what, new[0])
        return new[0]

    def dump(self):
        log("---- edgerelay stderr ----\n" + self.stderr_text())
        log("---- edgerelay stdout ----\n" + self.stdout_text())


@contextlib.contextmanager
def running(gateway, *also_close):
    """Wraps the body that starts and drives `gateway`: on any failure (a failed start too) prints
    its stderr and stdout and re-raises; always kills it, then closes each of `also_close`."""
    try:
        yield gateway
    except BaseException:
        gateway.dump()
        raise
    finally:
        gateway.kill()
        for x in also_close:
            x.close()


def check_access_record(rec):
    """Exactly the section 7 fields (detail optional), with the right JSON types."""
    keys = set(rec)
    check(ACCESS_FIELDS <= keys, "access-log line misses %s: %r" % (sorted(ACCESS_FIELDS - keys), rec))
    extra = keys - ACCESS_FIELDS - OPTIONAL_ACCESS_FIELDS
    check(not extra, "access-log line has unexpected fields %s: %r" % (sorted(extra), rec))
    for k in ("ts", "listener", "client", "user", "protocol", "target", "dialled", "rule", "result"):
        check(isinstance(rec[k], str), "access-log field %s is not a string: %r" % (k, rec))
    if "detail" in rec:
        check(isinstance(rec["detail"], str), "access-log field detail is not a string: %r" % rec)
    for k in ("bytes_up", "bytes_down", "duration_ms"):
        check(isinstance(rec[k], int) and not isinstance(rec[k], bool) and rec[k] >= 0,
              "access-log field %s is not a non-negative integer: %r" % (k, rec))
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", rec["ts"]) is not None,
          "access-log ts is not an ISO-8601 UTC time: %r" % rec)


# -- config -----------------------------------------------------------------------------------

def config_yaml(listener_extra="", rules=None, users="", limits=None, protocols="[socks5, socks4]",
                auth="none", listener_bind="127.0.0.1:0"):
    """A config with one listener `test` on a port the OS picks."""
    if rules is None:
        rules = ['{name: loopback, action: allow, from: ["127.0.0.0/8", "::1"], '
                 'to: ["127.0.0.0/8", "[::1]", "localhost"]}']
    lim = {"handshake_timeout": "2s", "connect_timeout": "2s", "idle_timeout": "30s", "shutdown_grace": "3s"}
    lim.update(limits or {})
    text = "listeners:\n"
    text += '  - {name: test, bind: "%s", protocols: %s, auth: %s%s}\n' % (listener_bind, protocols, auth,
                                                                           listener_extra)
    if users:
        text += "users:\n" + users
    text += "rules:\n" + "".join("  - %s\n" % r for r in rules)
    text += "limits: {%s}\n" % ", ".join("%s: %s" % kv for kv in lim.items())
    text += "log: {level: info, access: json}\n"
    return text


# -- local servers ----------------------------------------------------------------------------

class ServerThread:
    """A socketserver (bound by the subclass, usually to port 0 on loopback) serving on a daemon
    thread; close() shuts it down and waits for the thread (bounded)."""

    def __init__(self, server):
        self.server = server
        self.host, self.port = server.server_address[:2]
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FileServer(ServerThread):
    """A threading HTTP server on loopback, port 0, serving a directory with one random 1 MiB file."""

    def __init__(self, root, host="127.0.0.1", size=MIB, name="blob.bin"):
        os.makedirs(root, exist_ok=True)
        self.name = name
        data = os.urandom(size)
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        self.size = size
        self.sha256 = hashlib.sha256(data).hexdigest()
        handler = functools.partial(_QuietHandler, directory=root)
        super().__init__(_HTTPServer((host, 0), handler))

    def url(self, host=None):
        return "http://%s:%d/%s" % (host or self.host, self.port, self.name)


class _EchoHandler(socketserver.BaseRequestHandler):
    """Echoes; a server with a `greeting` attribute says it first (tells backends apart)."""

    def handle(self):
        self.request.settimeout(60)
        try:
            self.request.sendall(getattr(self.server, "greeting", b""))
            while True:
                data = self.request.recv(65536)
                if not data:
                    break
                self.request.sendall(data)
        except OSError:
            pass


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class EchoServer(ServerThread):
    def __init__(self, host="127.0.0.1"):
        super().__init__(_TCPServer((host, 0), _EchoHandler))


class CountingService:
    """A TCP service on raw sockets that counts the connections it accepts: the target a bypass
    would reach, so a test checks `accepted` stays 0. keep=True holds each connection open unread
    (a target that neither reads nor closes), keep=False closes it at once. serve(conn, peer), if
    given, takes each connection instead, on the accept thread (start a thread for a slow one);
    held connections, served ones too, are closed by close(). Binds host:port (port 0: the OS
    picks; host "0.0.0.0": also reached by a client that dials the unspecified address)."""

    def __init__(self, host="127.0.0.1", port=0, keep=False, serve=None, backlog=64):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.listen(backlog)
        self.host, self.port = self.sock.getsockname()[:2]
        self.keep = keep
        self.serve = serve
        self.accepted = 0
        self.held = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.serve is None and not self.keep:
                c.close()
                continue
            with self._lock:
                self.held.append(c)
            if self.serve is not None:
                self.serve(c, peer)

    def close(self):
        self.sock.close()
        with self._lock:
            for c in self.held:
                c.close()


# -- clients ----------------------------------------------------------------------------------

class SocksError(Exception):
    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SocksError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def socks5_connect(proxy, host, port, user=None, password=None, timeout=5):
    """A SOCKS5 CONNECT (RFC 1928/1929) to host:port through proxy=(h, p); returns the tunnel socket."""
    s = socket.create_connection(proxy, timeout=timeout)
    try:
        socks5_handshake(s, host, port, user, password)
        return s
    except BaseException:
        s.close()
        raise


def socks5_handshake(s, host, port, user=None, password=None):
    """The client side of a SOCKS5 CONNECT on a connected socket (plain, or ssl-wrapped); raises
    SocksError unless the reply is success."""
    if user is None:
        s.sendall(b"\x05\x01\x00")
    else:
        s.sendall(b"\x05\x01\x02")
    ver, method = recv_exact(s, 2)
    check(ver == 5, "SOCKS5 method reply version %d" % ver)
    if user is not None:
        if method != 2:
            raise SocksError("server chose method %d, not user/password" % method)
        u, p = user.encode(), password.encode()
        s.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        _, status = recv_exact(s, 2)
        if status != 0:
            raise SocksError("auth status %d" % status, code=("auth", status))
    elif method != 0:
        raise SocksError("server chose method %d" % method)
    try:
        addr = socket.inet_aton(host)
        req = b"\x05\x01\x00\x01" + addr
    except OSError:
        h = host.encode()
        req = b"\x05\x01\x00\x03" + bytes([len(h)]) + h
    s.sendall(req + struct.pack(">H", port))
    ver, rep, _, atyp = recv_exact(s, 4)
    check(ver == 5, "SOCKS5 reply version %d" % ver)
    if atyp == 1:
        recv_exact(s, 4 + 2)
    elif atyp == 4:
        recv_exact(s, 16 + 2)
    elif atyp == 3:
        recv_exact(s, recv_exact(s, 1)[0] + 2)
    if rep != 0:
        raise SocksError("SOCKS5 reply 0x%02x" % rep, code=rep)


def exchange(port, data, want, timeout=5, host="127.0.0.1"):
    """Sends `data` to the gateway in one go, returns the first `want` bytes of the answer (fewer
    on close): the exact bytes a hostile client gets, without a client library's checks between."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while len(got) < want:
            chunk = s.recv(want - len(got))
            if not chunk:
                break
            got += chunk
        return got


def socks5_request(atyp, addr, port):
    """The no-auth greeting and a CONNECT to `addr` (raw bytes of address type `atyp`) in one
    send: the request reaches the gateway exactly as written, however malformed."""
    return b"\x05\x01\x00" + b"\x05\x01\x00" + bytes([atyp]) + addr + struct.pack(">H", port)


def socks5_domain(name, port):
    """socks5_request for the domain `name` (bytes, sent as they are: a NUL or a space too)."""
    return socks5_request(3, bytes([len(name)]) + name, port)


def socks5_rep(port, request):
    """Sends a socks5_request to the gateway, returns the REP byte of its reply (None when it
    closed before one), after checking it chose no-auth."""
    got = exchange(port, request, 4)
    check(got[:2] == b"\x05\x00", "SOCKS5 method selection answered %r" % got)
    return got[3] if len(got) >= 4 else None


def curl(args, timeout=30):
    """Runs curl with -sS and --max-time 20 (and a process timeout); returns CompletedProcess."""
    cmd = ["curl", "-sS", "--max-time", "20", "--connect-timeout", "10"] + list(args)
    log("running", " ".join(cmd))
    return run(cmd, timeout=timeout)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@contextlib.contextmanager
def temp_dir(prefix="edgerelay-clients-"):
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def signals_caught(pid):
    """The signals a process has handlers for (SigCgt in /proc/PID/status); empty if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    mask = int(line.split()[1], 16)
                    return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    except OSError:
        pass
    return set()


def cpu_seconds(pid):
    """utime + stime of a process from /proc/PID/stat, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def vm_rss_kib(pid):
    """The resident memory of a process (VmRSS in /proc/PID/status), in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure("no VmRSS in /proc/%d/status" % pid)


def run_parts(binary, workdir, parts, *shared):
    """Runs each part(binary, folder, *shared) in a folder of its own below workdir, so one part's
    config and files never meet the next's; logs each part's name first so a failure names it."""
    for part in parts:
        log("==== %s" % part.__name__)
        folder = os.path.join(workdir, part.__name__)
        os.makedirs(folder)
        part(binary, folder, *shared)


def main(test_function):
    """Runs test_function(binary, workdir); prints PASS/FAIL; exit status 0 only on success."""
    binary = binary_from_argv()
    log("netns:", os.environ.get("EDGERELAY_NETNS", "?"))
    try:
        with temp_dir() as workdir:
            test_function(binary, workdir)
    except TestFailure as e:
        print("FAIL:", e, flush=True)
        sys.exit(1)
    except Exception:
        import traceback
        traceback.print_exc()
        print("FAIL: unexpected exception", flush=True)
        sys.exit(1)
    print("PASS", flush=True)
    sys.exit(0)
