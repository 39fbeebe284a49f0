#!/usr/bin/env python3
"""Log writes never block the workers. edgerelay runs with the access log on and its stdout and
stderr on one pipe that nobody reads; the test fills that pipe before any traffic, so every write
to it would block. Then:
- 100 SOCKS5 tunnels to a loopback echo server each complete 200 round trips of 1 KiB, while
- short sessions keep ending beside them (within 60 s) (SOCKS4a requests denied by a rule, each asking for a
  long name with a long USERID: ~0.8 KiB of access log apiece), until well over the 4 MiB the
  gateway queues for stdout, and every one of them is answered at once.
Only then is the pipe read. Every line in it must be whole (the filler, one JSON access record, or
one operator line), a notice must say how many access-log lines were dropped, and the access lines
written plus those counted as dropped must be every session, so none went missing uncounted."""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import gateway as gw
from gateway import check

TUNNELS = 100
ROUND_TRIPS = 200
CHUNK = 1024
DEADLINE = 30.0          # seconds for the tunnels to finish
SHORT_DEADLINE = 60.0    # seconds for the short sessions (on a loaded 2-CPU machine 8000 take ~10 s)
SHORT_SESSIONS_MIN = 8000  # ~6 MiB of access log: more than the queue (4 MiB) and the pipe hold
SOCKET_TIMEOUT = 5.0

OPERATOR_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) [a-z0-9_-]+: ")
DROPPED_RE = re.compile(r" warn log: dropped (\d+) access-log line\(s\) while stdout was stalled$")
FILLER = b"filler\n"


def free_port():
    # The gateway's own port-0 report goes to the unread pipe, so the test picks the port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port):
    return (
        "listeners:\n"
        '  - {name: test, bind: "127.0.0.1:%d", protocols: [socks5, socks4], auth: none}\n'
        "rules:\n"
        '  - {name: flood, action: deny, to: ["*.flood.test"]}\n'
        '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
        "limits: {handshake_timeout: 5s, connect_timeout: 5s, idle_timeout: 60s, shutdown_grace: 3s}\n"
        "log: {level: info, access: json}\n"
        "allow_root: true\n" % port)


def fill_pipe(write_fd):
    """Fills the pipe through a descriptor of its own: O_NONBLOCK is per open file, and the
    gateway's descriptors must stay blocking as they are in production."""
    fd = os.open("/proc/self/fd/%d" % write_fd, os.O_WRONLY | os.O_NONBLOCK)
    total = 0
    try:
        for chunk in (FILLER * 585, FILLER):  # whole lines, each write at most PIPE_BUF: all or nothing
            for _ in range(100000):
                try:
                    total += os.write(fd, chunk)
                except BlockingIOError:
                    break
    finally:
        os.close(fd)
    return total


def wait_serving(proc, port, timeout=15):
    """Waits until the gateway accepts; returns how many probe connections it accepted (each is a
    session with an access line of its own)."""
    accepted = []

    def ready():
        if proc.poll() is not None:
            return "exited"
        if not {signal.SIGTERM, signal.SIGHUP} <= gw.signals_caught(proc.pid):
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            accepted.append(1)
            return True
        except OSError:
            return False

    state = gw.wait_until(ready, timeout, interval=0.05)
    check(state is True, "edgerelay not serving on port %d within %ss (state %r)" % (port, timeout, state))
    return len(accepted)


class Tunnel(threading.Thread):
    def __init__(self, index, sock, start_gate):
        super().__init__(daemon=True)
        self.index = index
        self.sock = sock
        self.start_gate = start_gate
        self.error = None
        self.done = False

    def run(self):
        try:
            self.start_gate.wait(SOCKET_TIMEOUT)
            payload = bytes((self.index + i) & 0xFF for i in range(CHUNK))
            for _ in range(ROUND_TRIPS):
                self.sock.sendall(payload)
                got = gw.recv_exact(self.sock, CHUNK)
                if got != payload:
                    raise gw.TestFailure("tunnel %d: echo returned other bytes" % self.index)
            self.done = True
        except Exception as e:  # reported by the main thread
            self.error = "tunnel %d: %s: %s" % (self.index, type(e).__name__, e)
        finally:
            self.sock.close()


def short_session(port, index):
    """One SOCKS4a CONNECT the rule `flood` denies: the gateway must answer 0x5B right away."""
    user = (b"u%07d" % index) + b"x" * 247
    label = b"n%07d" % index + b"y" * 55
    host = b".".join([label, b"z" * 63, b"w" * 63]) + b".flood.test"
    s = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
    try:
        s.sendall(struct.pack(">BBH", 4, 1, 443) + b"\x00\x00\x00\x01" + user + b"\x00" + host + b"\x00")
        reply = gw.recv_exact(s, 8)
        if reply[1] != 0x5B:
            raise gw.TestFailure("short session %d: SOCKS4 reply 0x%02x, expected 0x5b" % (index, reply[1]))
    finally:
        s.close()


def short_sessions(port, tunnels, deadline, result):
    try:
        n = 0
        while time.monotonic() < deadline and (n < SHORT_SESSIONS_MIN or not all(t.done or t.error for t in tunnels)):
            short_session(port, n)
            n += 1
            result["count"] = n
    except Exception as e:
        result["error"] = "short session %d: %s: %s" % (result.get("count", 0), type(e).__name__, e)


def read_all(fd, until_eof, timeout):
    """Reads what the pipe holds (or to EOF), bounded in time."""
    os.set_blocking(fd, False)
    chunks = []
    end = time.monotonic() + timeout
    idle_since = time.monotonic()
    while time.monotonic() < end:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            if not until_eof and time.monotonic() - idle_since > 1.0:
                break
            time.sleep(0.01)
            continue
        if not data:
            break
        chunks.append(data)
        idle_since = time.monotonic()
    return b"".join(chunks)


def test(binary, workdir):
    echo = gw.EchoServer()
    port = free_port()
    path = os.path.join(workdir, "edgerelay.yaml")
    with open(path, "w") as f:
        f.write(config(port))
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([binary, "--config", path, "--workers", "2"], stdin=subprocess.DEVNULL,
                            stdout=write_fd, stderr=write_fd, env=gw.clean_env(), preexec_fn=gw.die_with_parent)
    output = b""
    try:
        probes = wait_serving(proc, port)
        filled = fill_pipe(write_fd)
        os.close(write_fd)  # the gateway holds the only writers now: EOF when it exits
        write_fd = -1
        gw.log("pipe filled with %d bytes; nobody reads it from here on" % filled)

        gate = threading.Event()
        tunnels = []
        for i in range(TUNNELS):
            try:
                s = gw.socks5_connect(("127.0.0.1", port), "127.0.0.1", echo.port, timeout=SOCKET_TIMEOUT)
            except (OSError, gw.SocksError) as e:
                raise gw.TestFailure("tunnel %d could not be opened with the log pipe full: %s: %s"
                                     % (i, type(e).__name__, e))
            s.settimeout(SOCKET_TIMEOUT)
            tunnels.append(Tunnel(i, s, gate))
        started = time.monotonic()
        deadline = started + DEADLINE
        for t in tunnels:
            t.start()
        short = {"count": 0}
        churn = threading.Thread(target=short_sessions, args=(port, tunnels, started + SHORT_DEADLINE, short),
                                 daemon=True)
        churn.start()
        gate.set()
        for t in tunnels:
            t.join(max(0.0, deadline - time.monotonic()))
        tunnels_took = time.monotonic() - started
        churn.join(max(0.0, started + SHORT_DEADLINE - time.monotonic()) + SOCKET_TIMEOUT)
        elapsed = time.monotonic() - started
        gw.log("with the log pipe full: %d tunnels x %d round trips in %.1f s; %d short sessions in %.1f s"
               % (TUNNELS, ROUND_TRIPS, tunnels_took, short["count"], elapsed))

        errors = [t.error for t in tunnels if t.error]
        check(not errors, "%d of %d tunnels failed with the log pipe full, e.g. %s"
              % (len(errors), TUNNELS, errors[:3]))
        unfinished = [t.index for t in tunnels if not t.done]
        check(not unfinished, "%d tunnels did not finish %d round trips within %ss with the log pipe full"
              % (len(unfinished), ROUND_TRIPS, DEADLINE))
        check("error" not in short, short.get("error", ""))
        check(short["count"] >= SHORT_SESSIONS_MIN, "only %d short sessions within %ss (wanted %d)"
              % (short["count"], SHORT_DEADLINE, SHORT_SESSIONS_MIN))
        check(proc.poll() is None, "edgerelay exited (%r) while its log pipe was full" % proc.poll())

        # Now read: the writer catches up and reports what it dropped.
        output = read_all(read_fd, until_eof=False, timeout=10)
        proc.send_signal(signal.SIGTERM)
        output += read_all(read_fd, until_eof=True, timeout=15)
        status = proc.wait(timeout=10)
        check(status == 0, "edgerelay exit status %r after SIGTERM" % status)

        check(output.endswith(b"\n"), "the log ends inside a line: %r" % output[-200:])
        lines = output.decode("utf-8").split("\n")[:-1]
        fillers = access = 0
        dropped = []
        tunnel_records = 0
        for line in lines:
            if line == "filler":
                fillers += 1
                continue
            if line.startswith("{"):
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise gw.TestFailure("a split or interleaved access line (%s): %r" % (e, line[:300]))
                gw.check_access_record(rec)
                access += 1
                if rec["rule"] == "loopback":
                    tunnel_records += 1
                    check(rec["result"] == "ok" and rec["bytes_up"] == rec["bytes_down"] == ROUND_TRIPS * CHUNK,
                          "tunnel record %r" % rec)
                continue
            check(OPERATOR_RE.match(line) is not None, "a line that is neither whole JSON nor a whole operator "
                  "line (split or interleaved): %r" % line[:300])
            m = DROPPED_RE.search(line)
            if m:
                dropped.append(int(m.group(1)))
        check(fillers * len(FILLER) == filled, "%d filler bytes came back, %d were written"
              % (fillers * len(FILLER), filled))
        gw.log("%d access lines written, dropped notices %s, %d tunnel records" % (access, dropped, tunnel_records))
        check(dropped, "no notice of dropped access-log lines after ~%d KiB of them with the pipe full"
              % (short["count"] * 800 // 1024))
        sessions = probes + TUNNELS + short["count"]
        check(access + sum(dropped) == sessions, "%d access lines written + %d counted as dropped != %d sessions"
              % (access, sum(dropped), sessions))
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(read_fd)
        echo.close()
        if output:
            tail = output.decode("utf-8", "replace").split("\n")
            gw.log("last lines of the log:\n" + "\n".join(line[:200] for line in tail[-8:]))


if __name__ == "__main__":
    gw.main(test)
