#!/usr/bin/env python3
"""Reload through the real binary, as an operator does it: listeners removed, added and moved; a
reload whose new address is taken fails whole; a backend's new address and health check apply; the
file watch never applies a half-written file and follows a Kubernetes ConfigMap `..data` swap."""

import os
import re
import signal
import socket
import time

import gateway as gw
from gateway import check

LIMITS = "limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 2s}\n"
LOG = "log: {level: info, access: json}\n"
ALLOW = '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
DENY_TWO = '  - {name: no-two, action: deny, to: ["127.0.0.2"]}\n'


def config(listeners, rules=ALLOW, backends=""):
    text = "listeners:\n" + "".join("  - %s\n" % l for l in listeners)
    if backends:
        text += "backends:\n" + backends
    return text + "rules:\n" + rules + LIMITS + LOG


def socks(name, bind="127.0.0.1:0"):
    return '{name: %s, bind: "%s", protocols: [socks5]}' % (name, bind)


def free_port():
    """A loopback port nobody listens on now (the kernel's pick, released again)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def refuses(port, within=5):
    """Whether connects to the port are refused, within `within` seconds: the workers close their
    acceptors just after the reload is logged."""
    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
    return gw.wait_until(refused, within, interval=0.05)


def listening_port(g, name, start):
    """The port of `listener NAME: listening on` logged after stderr line `start` (waits)."""
    line = g.wait_stderr(r" listener: %s: listening on " % re.escape(name), timeout=10, start=start)
    check(line is not None, "no 'listening on' line for %s after the reload:\n%s" % (name, g.stderr_text()))
    return int(gw.LISTENING_RE.search(line).group(3))


def reload_ok(g, generation, how=signal.SIGHUP):
    mark = len(g.stderr_lines())
    if how is not None:
        g.signal(how)
    line = g.wait_stderr(r"reload: ok: generation %d\b" % generation, timeout=10, start=mark)
    check(line is not None, "no 'reload: ok: generation %d':\n%s" % (generation, g.stderr_text()))
    return mark


def echo_through(port, target, payload=b"ping"):
    s = gw.socks5_connect(("127.0.0.1", port), target.host, target.port)
    s.sendall(payload)
    check(gw.recv_exact(s, len(payload)) == payload, "no echo through port %d" % port)
    return s


def socks_rep(port, target):
    try:
        echo_through(port, target).close()
        return 0
    except gw.SocksError as e:
        return e.code


class TagServer(gw.ServerThread):
    """Says its tag first, then echoes: tells which backend a forward door reached."""

    def __init__(self, tag, host="127.0.0.1"):
        server = gw._TCPServer((host, 0), gw._EchoHandler)
        server.greeting = tag
        super().__init__(server)


def removed_listener_stops_accepting_and_its_tunnel_goes_on(binary, workdir, echo):
    g = gw.Gateway(binary, config([socks("test"), socks("extra")]), workdir)
    with gw.running(g):
        g.start(listeners=("test", "extra"))
        tunnel = echo_through(g.port("extra"), echo)
        g.write_config(config([socks("test")]))
        mark = reload_ok(g, 2)
        check(g.wait_stderr(r"listener: extra: removed", timeout=5, start=mark) is not None,
              "the removal is not logged:\n" + g.stderr_text())
        check(refuses(g.port("extra")), "the removed listener's port still accepts connections")
        for i in range(3):
            payload = b"after-%d" % i
            tunnel.sendall(payload)
            check(gw.recv_exact(tunnel, len(payload)) == payload, "the tunnel opened before the removal stopped")
        before = len(g.stdout_lines())
        tunnel.close()
        rec = g.one_new_record(before, "tunnel through the removed listener")
        check(rec["listener"] == "extra" and rec["result"] == "ok", "its access-log line: %r" % rec)
        check(socks_rep(g.port("test"), echo) == 0, "the listener that stayed does not serve")
        g.stop_ok()


def added_and_moved_listeners_open(binary, workdir, echo):
    g = gw.Gateway(binary, config([socks("test")]), workdir)
    with gw.running(g):
        g.start()
        old = g.port("test")
        kept = echo_through(old, echo)  # on the acceptor that moves away: unaffected
        moved_to = free_port()
        g.write_config(config([socks("test", "127.0.0.1:%d" % moved_to), socks("added")]))
        mark = reload_ok(g, 2)
        check(listening_port(g, "test", mark) == moved_to, "the moved listener logged another port")
        added = listening_port(g, "added", mark)
        check(socks_rep(moved_to, echo) == 0, "the moved listener's new port does not serve")
        check(socks_rep(added, echo) == 0, "the added listener does not serve")
        check(refuses(old), "the moved listener's old port still accepts connections")
        kept.sendall(b"still")
        check(gw.recv_exact(kept, 5) == b"still", "a tunnel through the old port stopped")
        kept.close()
        g.stop_ok()


def taken_address_fails_the_whole_reload(binary, workdir, echo, echo_two):
    g = gw.Gateway(binary, config([socks("test"), socks("extra")]), workdir)
    squatter = socket.socket()
    with gw.running(g):
        g.start(listeners=("test", "extra"))
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(4)
        taken = squatter.getsockname()[1]
        # Drops `extra`, adds `blocked` on the taken port and denies 127.0.0.2: none of it may apply.
        g.write_config(config([socks("test"), socks("blocked", "127.0.0.1:%d" % taken)], rules=DENY_TWO + ALLOW))
        mark = len(g.stderr_lines())
        g.signal(signal.SIGHUP)
        check(g.wait_stderr(r"reload: failed", timeout=10, start=mark) is not None,
              "no failed reload:\n" + g.stderr_text())
        named = g.wait_stderr(r"listener 'blocked': cannot listen on 127\.0\.0\.1:%d" % taken, timeout=1, start=mark)
        check(named is not None, "no log line names the listener and its address:\n" + g.stderr_text())
        check(g.wait_stderr(r"reload: ok", timeout=0.5, start=mark) is None, "a reload went through")
        for name in ("test", "extra"):
            check(socks_rep(g.port(name), echo) == 0, "listener %s stopped serving after a failed reload" % name)
        check(socks_rep(g.port("test"), echo_two) == 0, "the failed reload's rules apply (127.0.0.2 denied)")
        # The same file without the taken port goes through, as generation 2.
        g.write_config(config([socks("test")], rules=DENY_TWO + ALLOW))
        reload_ok(g, 2)
        check(socks_rep(g.port("test"), echo_two) == 0x02, "the next good reload's rules do not apply")
        check(refuses(g.port("extra")), "the next good reload did not close extra")
        g.stop_ok()
    squatter.close()


def backend_changes_apply_and_health_follows(binary, workdir):
    one, two = TagServer(b"ONE\n"), TagServer(b"TWO\n", host="127.0.0.2")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    door = '{name: door, bind: "127.0.0.1:0", forward: svc}'
    rules = '  - {name: doors, action: allow, from: ["127.0.0.0/8"], to: ["backend:svc"]}\n'

    def backend(host, port, health=""):
        return "  - {name: svc, host: %s, portbase: %d%s}\n" % (host, port - 1, health)

    g = gw.Gateway(binary, config([door], rules, backend("127.0.0.1", one.port)), workdir)
    with gw.running(g, one, two):
        g.start(listeners=("door",))
        first = socket.create_connection(("127.0.0.1", g.port("door")), timeout=5)
        check(gw.recv_exact(first, 4) == b"ONE\n", "the door did not reach the first backend")
        g.write_config(config([door], rules, backend("127.0.0.2", two.port)))
        reload_ok(g, 2)
        second = socket.create_connection(("127.0.0.1", g.port("door")), timeout=5)
        check(gw.recv_exact(second, 4) == b"TWO\n", "a new session did not go to the backend's new host and port")
        first.sendall(b"old")
        check(gw.recv_exact(first, 3) == b"old", "the session to the old backend stopped")
        first.close()
        second.close()

        health = ", health_check: {interval: 1s, timeout: 500ms}"
        g.write_config(config([door], rules, backend("127.0.0.1", dead.getsockname()[1], health)))
        mark = reload_ok(g, 3)
        down = g.wait_stderr(r"backend 'svc' is down \(tcp 127\.0\.0\.1:%d " % dead.getsockname()[1], timeout=10,
                             start=mark)
        check(down is not None, "the health check does not probe the backend's new address:\n" + g.stderr_text())
        g.write_config(config([door], rules, backend("127.0.0.2", two.port, health)))
        mark = reload_ok(g, 4)
        up = g.wait_stderr(r"backend 'svc' is up \(tcp 127\.0\.0\.2:%d ok" % two.port, timeout=10, start=mark)
        check(up is not None, "the restarted health check does not find the backend up:\n" + g.stderr_text())
        g.stop_ok()
    dead.close()


def half_written_file_is_not_applied(binary, workdir, echo_two):
    g = gw.Gateway(binary, config([socks("test")]), workdir)
    with gw.running(g):
        g.start()
        text = config([socks("test")], rules=DENY_TWO + ALLOW)
        half = len(text) // 2
        mark = len(g.stderr_lines())
        with open(g.config_path, "w") as f:  # in place, as `cat > file` or a plain editor save does
            f.write(text[:half])
            f.flush()
            os.fsync(f.fileno())
            time.sleep(1.5)
            check(g.wait_stderr(r"reload|changed on disk", timeout=0.1, start=mark) is None,
                  "the watch reacted to a file still open for writing:\n" + "\n".join(g.stderr_lines()[mark:]))
            check(socks_rep(g.port("test"), echo_two) == 0, "the old rules no longer apply mid-write")
            f.write(text[half:])
        reload_ok(g, 2, how=None)
        check(socks_rep(g.port("test"), echo_two) == 0x02, "the completed file's rules do not apply")
        g.stop_ok()


def configmap_symlink_swap_is_applied(binary, workdir, echo_two):
    mount = os.path.join(workdir, "configmap")
    os.makedirs(os.path.join(mount, "..2026_x"))
    with open(os.path.join(mount, "..2026_x", "edgerelay.yaml"), "w") as f:
        f.write(gw.allow_root_when_root(config([socks("test")])))
    os.symlink("..2026_x", os.path.join(mount, "..data"))
    os.symlink("..data/edgerelay.yaml", os.path.join(mount, "edgerelay.yaml"))
    g = gw.Gateway(binary, config([socks("test")]), workdir, name="unused.yaml")
    g.config_path = os.path.join(mount, "edgerelay.yaml")
    with gw.running(g):
        g.start()
        check(socks_rep(g.port("test"), echo_two) == 0, "the first ConfigMap version's rules do not apply")
        mark = len(g.stderr_lines())
        # What the kubelet does: a new version's directory, a temporary link, a rename over ..data.
        os.makedirs(os.path.join(mount, "..2026_y"))
        with open(os.path.join(mount, "..2026_y", "edgerelay.yaml"), "w") as f:
            f.write(gw.allow_root_when_root(config([socks("test")], rules=DENY_TWO + ALLOW)))
        os.symlink("..2026_y", os.path.join(mount, "..data_tmp"))
        os.rename(os.path.join(mount, "..data_tmp"), os.path.join(mount, "..data"))
        line = g.wait_stderr(r"reload: ok: generation 2\b", timeout=10, start=mark)
        check(line is not None, "the ..data swap was not applied:\n" + g.stderr_text())
        check(socks_rep(g.port("test"), echo_two) == 0x02, "the swapped-in version's rules do not apply")
        # The old version goes, as the kubelet removes it; a second swap is seen as well.
        os.remove(os.path.join(mount, "..2026_x", "edgerelay.yaml"))
        os.rmdir(os.path.join(mount, "..2026_x"))
        os.makedirs(os.path.join(mount, "..2026_z"))
        with open(os.path.join(mount, "..2026_z", "edgerelay.yaml"), "w") as f:
            f.write(gw.allow_root_when_root(config([socks("test")])))
        os.symlink("..2026_z", os.path.join(mount, "..data_tmp"))
        os.rename(os.path.join(mount, "..data_tmp"), os.path.join(mount, "..data"))
        check(g.wait_stderr(r"reload: ok: generation 3\b", timeout=10, start=mark) is not None,
              "the second ..data swap was not applied:\n" + g.stderr_text())
        check(socks_rep(g.port("test"), echo_two) == 0, "the third version's rules do not apply")
        g.stop_ok()


def test(binary, workdir):
    echo, echo_two = gw.EchoServer(), gw.EchoServer(host="127.0.0.2")
    try:
        steps = [
            ("removed", lambda d: removed_listener_stops_accepting_and_its_tunnel_goes_on(binary, d, echo)),
            ("added-moved", lambda d: added_and_moved_listeners_open(binary, d, echo)),
            ("taken", lambda d: taken_address_fails_the_whole_reload(binary, d, echo, echo_two)),
            ("backend", lambda d: backend_changes_apply_and_health_follows(binary, d)),
            ("half-written", lambda d: half_written_file_is_not_applied(binary, d, echo_two)),
            ("configmap", lambda d: configmap_symlink_swap_is_applied(binary, d, echo_two)),
        ]
        for name, step in steps:
            gw.log("----", name)
            d = os.path.join(workdir, name)
            os.makedirs(d)
            step(d)
    finally:
        echo.close()
        echo_two.close()


if __name__ == "__main__":
    gw.main(test)
