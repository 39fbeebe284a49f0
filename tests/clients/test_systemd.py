#!/usr/bin/env python3
"""systemd integration with real sockets and the real binary:

- notify: a fake NOTIFY_SOCKET (a unix datagram socket this test binds, by path and by abstract
  name) receives exactly READY=1 after the listeners are bound, RELOADING=1 with MONOTONIC_USEC
  then READY=1 around each reload (good and bad, each saying its result in STATUS=), and
  STOPPING=1 on SIGTERM;
- watchdog: with WATCHDOG_USEC, WATCHDOG=1 arrives about every half interval; while the whole
  process is frozen (SIGSTOP) none arrive, and they resume after SIGCONT; a WATCHDOG_PID of
  another process turns the watchdog off;
- socket activation: systemd-socket-activate (Debian's systemd package) binds two named sockets
  and execs edgerelay, whose listeners of those names accept on them with every worker; a name no
  listener has, a socket of the wrong family and one not listening are refused, naming the fd;
- privileges: as root, `user: nobody` drops to uid/gid 65534 (/proc/PID/status) after binding, sessions
  and a reload still work; without `user` or `allow_root: true` edgerelay refuses to run as root;
  after the drop a reload fails while the TLS key is root's alone (TLS still served) and succeeds
  once the key is readable by the account's group;
- max_sessions: a listener's own max_sessions and limits.max_sessions refuse connections beyond
  them at accept (closed with no reply to the handshake), counted in
  edgerelay_limit_rejections_total{limit="max_sessions"} and logged once per second;
  limits.per_source_rate refuses one address's connections beyond its rate, others go on.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway as gw  # noqa: E402
from gateway import check, log  # noqa: E402

RULES = ['{name: loopback, action: allow, from: ["127.0.0.0/8", "::1"], to: ["127.0.0.0/8", "[::1]"]}']


class FakeManager:
    """The service manager's end of NOTIFY_SOCKET: a unix datagram socket collecting messages."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.address = address
        self.messages = []  # (monotonic seconds at arrival, text)
        self._lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def env_value(self):
        return "@" + self.address[1:].decode() if isinstance(self.address, bytes) else self.address

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def texts(self, kind=None):
        with self._lock:
            return [t for _, t in self.messages if kind is None or kind(t)]

    def timed(self, text):
        with self._lock:
            return [at for at, t in self.messages if t == text]

    def wait_count(self, n, timeout=10, kind=None):
        gw.wait_until(lambda: len(self.texts(kind)) >= n, timeout)
        got = self.texts(kind)
        check(len(got) >= n, "expected %d notification(s) within %ss, got %r" % (n, timeout, got))
        return got

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def not_watchdog(text):
    return text != "WATCHDOG=1"


def config_text(extra_rules=(), first_rules=(), listener_extra="", limits=None, tail=""):
    rules = list(first_rules) + RULES + list(extra_rules)
    return gw.config_yaml(rules=rules, listener_extra=listener_extra, limits=limits) + tail


def check_reload_pair(msgs, path, before_us, after_us, status_rx):
    reloading, ready = msgs
    m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)\nSTATUS=reloading (.+)", reloading)
    check(m is not None, "expected RELOADING=1 with MONOTONIC_USEC and STATUS, got %r" % reloading)
    check(m.group(2) == path, "RELOADING names %r, expected %r" % (m.group(2), path))
    us = int(m.group(1))
    check(before_us <= us <= after_us, "MONOTONIC_USEC %d is not CLOCK_MONOTONIC between %d and %d"
          % (us, before_us, after_us))
    check(re.fullmatch(r"READY=1\nSTATUS=" + status_rx, ready) is not None,
          "expected READY=1 with STATUS matching %r after the reload, got %r" % (status_rx, ready))


def notify_sequence(binary, workdir):
    for address in (os.path.join(workdir, "notify.sock"), b"\0edgerelay-test-notify-%d" % os.getpid()):
        manager = FakeManager(address)
        g = gw.Gateway(binary, config_text(), workdir)
        g.extra_env = {"NOTIFY_SOCKET": manager.env_value}
        with gw.running(g, manager):
            log("NOTIFY_SOCKET=%r" % manager.env_value)
            g.start()
            first = manager.wait_count(1)
            check(first == ["READY=1\nSTATUS=serving 1 listener(s), generation 1"],
                  "expected READY=1 once the listeners are bound, got %r" % first)
            check(g.port() > 0, "no port")

            # A good reload. Writing the file wakes the file watch first; then a SIGHUP reloads again.
            before = time.monotonic_ns() // 1000
            g.write_config(config_text(extra_rules=['{name: extra, action: deny, to: ["10.0.0.0/8"]}']))
            manager.wait_count(3)
            g.signal(signal.SIGHUP)
            msgs = manager.wait_count(5)
            after = time.monotonic_ns() // 1000
            check_reload_pair(msgs[1:3], g.config_path, before, after,
                              r"reload ok; 2 rules; serving 1 listener\(s\), generation 2")
            check_reload_pair(msgs[3:5], g.config_path, before, after,
                              r"reload ok; 2 rules; serving 1 listener\(s\), generation 3")

            # A bad reload: the same pair, the error in STATUS=, the generation kept.
            before = time.monotonic_ns() // 1000
            g.write_config(config_text() + "limits: {max_sessions: many}\n")
            manager.wait_count(7)
            g.signal(signal.SIGHUP)
            msgs = manager.wait_count(9)
            after = time.monotonic_ns() // 1000
            for pair in (msgs[5:7], msgs[7:9]):
                check_reload_pair(pair, g.config_path, before, after,
                                  r"reload failed \(.*edgerelay\.yaml:\d+:\d+: .*\); serving 1 listener\(s\), "
                                  r"generation 3")

            g.stop_ok()
            msgs = manager.wait_count(10)
            check(msgs[9] == "STOPPING=1\nSTATUS=draining 0 session(s)",
                  "expected STOPPING=1 on SIGTERM, got %r" % msgs[9])
            time.sleep(0.2)
            check(len(manager.texts()) == 10, "unexpected notifications: %r" % manager.texts()[10:])
            check(not any("WATCHDOG" in t for t in manager.texts()), "WATCHDOG=1 without WATCHDOG_USEC")
        log("notifications in order:", manager.texts())


def pings_between(manager, start, end):
    return [t for t in manager.timed("WATCHDOG=1") if start <= t < end]


def watchdog(binary, workdir):
    manager = FakeManager(os.path.join(workdir, "notify.sock"))
    g = gw.Gateway(binary, config_text(), workdir)
    g.extra_env = {"NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": "400000"}
    with gw.running(g, manager):
        g.start()
        manager.wait_count(1)
        t0 = time.monotonic()
        time.sleep(2.0)
        n = len(pings_between(manager, t0, time.monotonic()))
        # Every 200 ms: about 10 in 2 s (fewer on a loaded machine, never many more).
        check(5 <= n <= 12, "expected about 10 WATCHDOG=1 in 2 s at a 400 ms WatchdogSec, got %d" % n)
        os.kill(g.pid, signal.SIGSTOP)
        try:
            # A ping sent just before the stop may still be read meanwhile: count from a moment on.
            time.sleep(0.3)
            settled = len(manager.timed("WATCHDOG=1"))
            time.sleep(1.5)
            frozen = len(manager.timed("WATCHDOG=1")) - settled
        finally:
            os.kill(g.pid, signal.SIGCONT)
        check(frozen == 0, "%d WATCHDOG=1 arrived while the process was stopped" % frozen)
        resumed_at = time.monotonic()
        time.sleep(1.5)
        n = len(pings_between(manager, resumed_at, time.monotonic()))
        check(n >= 3, "expected the pings to resume after SIGCONT, got %d in 1.5 s" % n)
        # Sessions still work through the frozen-and-thawed process.
        echo = gw.EchoServer()
        try:
            echo_through(g.address(), echo)
        finally:
            echo.close()
        g.stop_ok()
        log("watchdog pings: %d in all" % len(manager.timed("WATCHDOG=1")))

    manager = FakeManager(os.path.join(workdir, "notify2.sock"))
    g = gw.Gateway(binary, config_text(), workdir)
    g.extra_env = {"NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}
    with gw.running(g, manager):
        g.start()
        manager.wait_count(1)
        time.sleep(1.0)
        check(manager.timed("WATCHDOG=1") == [], "WATCHDOG=1 sent though WATCHDOG_PID names another process")
        g.stop_ok()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def echo_through(proxy, echo, payload=b"ping"):
    with gw.socks5_connect(proxy, echo.host, echo.port) as s:
        s.sendall(payload)
        got = gw.recv_exact(s, len(payload))
        check(got == payload, "echo through %r returned %r" % (proxy, got))


def socket_activation(binary, workdir):
    launcher = shutil.which("systemd-socket-activate")
    check(launcher is not None, "systemd-socket-activate not found: install Debian's systemd package "
                                "(scripts/install-deps.sh test)")
    edge_port, door_port = free_port(), free_port()
    text = ("listeners:\n"
            '  - {name: edge, bind: "127.0.0.1:%d", protocols: [socks5]}\n'
            '  - {name: door, bind: "127.0.0.1:%d", protocols: [socks5]}\n'
            '  - {name: own, bind: "127.0.0.1:0", protocols: [socks5]}\n'
            "rules:\n  - %s\n"
            "limits: {shutdown_grace: 2s}\n" % (edge_port, door_port, RULES[0]))
    g = gw.Gateway(binary, text, workdir)
    g.command_prefix = [launcher, "-l", "127.0.0.1:%d" % edge_port, "-l", "127.0.0.1:%d" % door_port,
                        "--fdname=edge:door"]
    echo = gw.EchoServer()
    first = {}

    def first_client():
        # systemd-socket-activate execs edgerelay on the first connection; this one waits in the
        # passed socket's queue meanwhile and is served once edgerelay accepts.
        try:
            time.sleep(0.3)
            echo_through(("127.0.0.1", edge_port), echo, b"queued before the start")
            first["ok"] = True
        except Exception as e:  # reported by the check below
            first["error"] = repr(e)

    client = threading.Thread(target=first_client, daemon=True)
    with gw.running(g, echo):
        client.start()
        g.start(listeners=("edge", "door", "own"))
        client.join(10)
        check(first.get("ok"), "the connection that started edgerelay was not served: %r" % first)
        for name, fd in (("edge", 3), ("door", 4)):
            line = g.wait_stderr(r"listener: %s: accepting on the socket passed as fd %d " % (name, fd), timeout=1)
            check(line is not None, "no log line for the passed socket of %s" % name)
        check(g.port("edge") == edge_port and g.port("door") == door_port,
              "passed listeners report %r" % g.ports)
        # 20 sessions spread over the workers, each through a passed socket or the one edgerelay bound.
        for i in range(20):
            echo_through(g.address(("edge", "door", "own")[i % 3]), echo, b"hello %d" % i)
        recs = g.wait_access_records(21)
        check(all(r["result"] == "ok" for r in recs), "sessions failed: %r" % recs)
        check(sorted({r["listener"] for r in recs}) == ["door", "edge", "own"], "listeners seen: %r" % recs)
        # A reload with the same binds keeps the passed sockets' acceptors.
        g.signal(signal.SIGHUP)
        check(g.wait_stderr(r"reload: ok: generation 2") is not None, "reload did not succeed")
        echo_through(g.address("edge"), echo)
        g.stop_ok()

    # Refusals, each naming the fd: a name no listener has (systemd-socket-activate), then sockets
    # handed over by this script: the wrong family, and one bound but not listening.
    port = free_port()
    proc = subprocess.Popen([launcher, "-l", "127.0.0.1:%d" % port, "--fdname=nosuch", binary, "--config",
                             g.config_path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=gw.die_with_parent)
    try:
        # The launcher execs on the first connection.
        check(gw.wait_until(lambda: _connects(("127.0.0.1", port)), 10), "systemd-socket-activate is not listening")
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    check(proc.returncode == 1, "an unknown fd name: exit %d, expected 1:\n%s" % (proc.returncode, err))
    check("socket activation: fd 3 (LISTEN_FDNAMES 'nosuch') names no listener of %s (listeners: edge, door, own)"
          % g.config_path in err, "unknown fd name not named:\n" + err)

    def launch_with(sock, err_w, name="edge"):
        os.dup2(err_w, 2)
        if sock.fileno() != 3:
            os.dup2(sock.fileno(), 3)
        os.set_inheritable(3, True)  # dup2 onto itself would keep the socket's close-on-exec
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_FDNAMES"] = name
        os.execv(binary, [binary, "--config", g.config_path])

    for family, listen, words in ((socket.AF_INET6, True, "is an IPv6 socket, but listener 'edge' binds IPv4"),
                                  (socket.AF_INET, False, "is not listening")):
        sock = socket.socket(family)
        sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        if listen:
            sock.listen(8)
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                launch_with(sock, err_w)
            finally:
                os._exit(127)
        os.close(err_w)
        sock.close()
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            check(time.monotonic() < deadline, "edgerelay did not exit on a bad passed socket")
            time.sleep(0.05)
        with os.fdopen(err_r) as f:
            err = f.read()
        check(os.waitstatus_to_exitcode(status) == 1, "a bad passed socket: exit %r, expected 1" % status)
        check(("socket activation: fd 3 (LISTEN_FDNAMES 'edge') " + words) in err,
              "the refusal does not say %r:\n%s" % (words, err))
        log("refused:", err.strip())


def _connects(address):
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


def proc_ids(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1:]
    raise gw.TestFailure("no %s in /proc/%d/status" % (field, pid))


def privileges(binary, workdir):
    check(os.geteuid() == 0, "the privilege test needs root (CI runs as root)")
    # The dropped process re-reads its config on reload: nobody must reach it (docs/operations-systemd.md).
    os.chmod(workdir, 0o755)
    os.chmod(os.path.dirname(workdir), 0o755)
    g = gw.Gateway(binary, config_text(tail="user: nobody\n"), workdir)
    echo = gw.EchoServer()
    with gw.running(g, echo):
        g.start()
        check(g.wait_stderr(r"server: dropped privileges to nobody:nogroup \(uid 65534, gid 65534\)", timeout=5),
              "no log line for the drop")
        for field in ("Uid", "Gid"):
            ids = proc_ids(g.pid, field)
            check(ids == ["65534"] * 4, "%s after the drop: %r (real, effective, saved, fs)" % (field, ids))
        check(proc_ids(g.pid, "Groups") == ["65534"], "supplementary groups kept: %r" % proc_ids(g.pid, "Groups"))
        check(proc_ids(g.pid, "CapEff") == ["0000000000000000"], "capabilities kept: %r" % proc_ids(g.pid, "CapEff"))
        for task in os.listdir("/proc/%d/task" % g.pid):
            ids = proc_ids(int(task), "Uid")
            check(ids == ["65534"] * 4, "thread %s still has uids %r" % (task, ids))
        echo_through(g.address(), echo)
        # A reload as nobody: a rule denying the echo server's port now refuses the session.
        g.write_config(config_text(tail="user: nobody\n",
                                   first_rules=['{name: no-echo, action: deny, to: ["127.0.0.1:%d"]}' % echo.port]))
        g.signal(signal.SIGHUP)
        check(g.wait_stderr(r"reload: ok: generation \d+ \(2 rules\)") is not None,
              "reload after the drop failed:\n" + g.stderr_text())
        try:
            echo_through(g.address(), echo)
            raise gw.TestFailure("the reloaded rule did not apply after the drop")
        except gw.SocksError as e:
            check(e.code == 2, "expected SOCKS5 reply 0x02 (denied), got %r" % e)
        g.stop_ok()

    for tail, words in (("", "running as root: set `user:`"), ("allow_root: false\n", "running as root: set `user:`"),
                        ("user: no-such-account-x\n", "user 'no-such-account-x': no such account")):
        g = gw.Gateway(binary, config_text(tail=tail), workdir, name="refuse.yaml")
        if not tail:
            # gateway.py would add allow_root: true to a config saying nothing; write it by hand.
            with open(g.config_path, "w") as f:
                f.write(config_text())
        r = gw.run([binary, "--config", g.config_path, "--workers", "1"], timeout=15)
        check(r.returncode == 1, "%r: exit %d, expected 1:\n%s" % (tail, r.returncode, r.stderr))
        check("edgerelay: not starting: " in r.stderr and words in r.stderr,
              "%r: the refusal does not say %r:\n%s" % (tail, words, r.stderr))
    g = gw.Gateway(binary, config_text(tail="allow_root: true\n"), workdir, name="root.yaml")
    with gw.running(g):
        g.start()
        check(proc_ids(g.pid, "Uid")[1] == "0", "allow_root: true did not keep root")
        check(g.wait_stderr(r"running as root \(allow_root: true\)", timeout=2), "no log line for allow_root")
        g.stop_ok()


def tls_handshake(address):
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(address, timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.version()


def keys_after_the_drop(binary, workdir):
    """The rule docs/operations-systemd.md gives: keys are read as root at start; a reload after
    the drop reads them as the new account, so a key only root can read fails the reload (the
    running config and TLS contexts stay) until the account may read it."""
    check(os.geteuid() == 0, "the privilege test needs root (CI runs as root)")
    os.chmod(workdir, 0o755)
    os.chmod(os.path.dirname(workdir), 0o755)
    cert, key = os.path.join(workdir, "gw.pem"), os.path.join(workdir, "gw.key")
    r = gw.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-days", "2"], timeout=30)
    check(r.returncode == 0, "openssl req failed: " + r.stderr)
    os.chown(key, 0, 0)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    tls = ", tls: {cert: %s, key: %s}" % (cert, key)
    g = gw.Gateway(binary, config_text(listener_extra=tls, tail="user: nobody\n"), workdir)
    with gw.running(g):
        g.start()
        check(proc_ids(g.pid, "Uid") == ["65534"] * 4, "not dropped")
        check(tls_handshake(g.address()) is not None, "no TLS after the drop")
        mark = len(g.stderr_lines())
        g.write_config(config_text(listener_extra=tls, tail="user: nobody\n",
                                   extra_rules=['{name: extra, action: deny, to: ["10.0.0.0/8"]}']))
        line = g.wait_stderr(r"reload: failed; keeping generation 1", timeout=10, start=mark)
        check(line is not None, "a reload that cannot read the key did not fail:\n" + g.stderr_text())
        named = [x for x in g.stderr_lines()[mark:] if key in x]
        check(named, "the failed reload does not name the key file:\n" + "\n".join(g.stderr_lines()[mark:]))
        log("reload as nobody, key 0600 root:", named[0])
        check(tls_handshake(g.address()) is not None, "the running TLS context was lost")
        os.chown(key, 0, 65534)
        os.chmod(key, 0o640)  # root:nogroup 0640, as docs/operations-systemd.md says
        mark = len(g.stderr_lines())
        g.signal(signal.SIGHUP)
        check(g.wait_stderr(r"reload: ok: generation 2", timeout=10, start=mark) is not None,
              "a key readable by the group did not reload:\n" + g.stderr_text())
        check(tls_handshake(g.address()) is not None, "no TLS after the reload")
        g.stop_ok()


def metric(admin, name):
    with urllib.request.urlopen("http://%s:%d/metrics" % admin, timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else 0


def refused_at_accept(address):
    """Connects and sends a SOCKS5 greeting: a refused connection is closed with no reply."""
    with socket.create_connection(address, timeout=5) as s:
        try:
            s.sendall(b"\x05\x01\x00")
            data = s.recv(16)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""


def max_sessions(binary, workdir):
    admin_port = free_port()
    text = ("listeners:\n"
            '  - {name: test, bind: "127.0.0.1:0", protocols: [socks5], max_sessions: 2}\n'
            '  - {name: other, bind: "127.0.0.1:0", protocols: [socks5]}\n'
            "rules:\n  - %s\n"
            "limits: {max_sessions: 4, shutdown_grace: 1s}\n"
            'admin: {bind: "127.0.0.1:%d"}\n' % (RULES[0], admin_port))
    # One worker: the warning is logged once a second per worker and listener.
    g = gw.Gateway(binary, text, workdir, workers=1)
    echo = gw.EchoServer()
    held = []
    with gw.running(g, echo):
        g.start(listeners=("test", "other"))
        admin = ("127.0.0.1", admin_port)
        name = 'edgerelay_limit_rejections_total{limit="max_sessions"}'
        check(metric(admin, name) == 0, "rejections before any")
        for _ in range(2):
            held.append(gw.socks5_connect(g.address("test"), echo.host, echo.port))
        for i in range(3):
            check(refused_at_accept(g.address("test")), "connection %d beyond the listener's max_sessions served" % i)
        check(gw.wait_until(lambda: metric(admin, name) == 3, 5), "expected 3 rejections, metrics say %d"
              % metric(admin, name))
        warnings = [line for line in g.stderr_lines() if "its max_sessions (2) reached" in line]
        check(len(warnings) == 1, "expected one warning for three refusals within a second, got %r" % warnings)
        # The other listener is not limited by test's count, only by the process-wide 4.
        for _ in range(2):
            held.append(gw.socks5_connect(g.address("other"), echo.host, echo.port))
        check(refused_at_accept(g.address("other")), "a fifth session beyond limits.max_sessions was served")
        check(gw.wait_until(lambda: metric(admin, name) == 4, 5), "the process-wide refusal was not counted")
        check(g.wait_stderr(r"listener: other: max_sessions \(4\) reached", timeout=2), "no process-wide warning")
        # Sessions ending free their places.
        held.pop(0).close()
        held.pop().close()
        ok = gw.wait_until(lambda: _try_echo(g.address("test"), echo), 5)
        check(ok, "a place on test did not come back after a session ended")
        recs = g.access_records()
        check(sum(1 for r in recs if r["listener"] == "test") >= 1, "no access record for test")
        for s in held:
            s.close()
        g.stop_ok()


def per_source_rate(binary, workdir):
    admin_port = free_port()
    text = ("listeners:\n"
            '  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}\n'
            "rules:\n  - %s\n"
            "limits: {per_source_rate: 5, shutdown_grace: 1s}\n"
            'admin: {bind: "127.0.0.1:%d"}\n' % (RULES[0], admin_port))
    g = gw.Gateway(binary, text, workdir, workers=1)
    echo = gw.EchoServer()
    with gw.running(g, echo):
        g.start()
        admin = ("127.0.0.1", admin_port)
        name = 'edgerelay_limit_rejections_total{limit="per_source_rate"}'
        started = time.monotonic()
        for i in range(5):
            echo_through(g.address(), echo, b"burst %d" % i)
        refused = sum(1 for _ in range(3) if refused_at_accept(g.address()))
        check(time.monotonic() - started < 0.5, "the burst took too long to test a rate of 5/s")
        check(refused == 3, "expected 3 of 3 connections beyond 5 in a second refused, got %d" % refused)
        check(gw.wait_until(lambda: metric(admin, name) == 3, 5), "rejections counted: %d" % metric(admin, name))
        check(g.wait_stderr(r"per_source_rate \(5/s\) exceeded by 127\.0\.0\.1; refusing", timeout=2),
              "no warning naming the source")
        # Another address is not held back by 127.0.0.1's rate.
        with socket.create_connection(g.address(), timeout=5, source_address=("127.0.0.2", 0)) as s:
            gw.socks5_handshake(s, echo.host, echo.port)
        # A second later 127.0.0.1 has a second's worth again.
        time.sleep(1.1)
        echo_through(g.address(), echo, b"after a second")
        g.stop_ok()


def _try_echo(address, echo):
    try:
        echo_through(address, echo)
        return True
    except (gw.SocksError, OSError, gw.TestFailure):
        return False


def main(binary, workdir):
    gw.run_parts(binary, workdir, PARTS)


PARTS = [notify_sequence, watchdog, socket_activation, privileges, keys_after_the_drop, max_sessions, per_source_rate]

if __name__ == "__main__":
    if len(sys.argv) > 2:
        wanted = sys.argv[2:]
        PARTS = [p for p in PARTS if p.__name__ in wanted]
        del sys.argv[2:]
    gw.main(main)
