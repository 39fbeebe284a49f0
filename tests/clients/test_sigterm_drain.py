#!/usr/bin/env python3
"""SIGTERM with the real binary (docs/config.md): stop accepting, let open tunnels drain up to
shutdown_grace, then close them and exit 0.

A. grace 10s: a SOCKS5 tunnel to an echo server is open; after SIGTERM new connections are refused
   within 1 s, the open tunnel still echoes, and once the client closes it the process exits 0 long
   before the grace period ends.
B. grace 1s: the tunnel stays open; the gateway closes it after about 1 s and exits 0."""

import contextlib
import signal
import socket
import time

import gateway as gw
from gateway import check


def echo_roundtrip(sock, payload, what):
    sock.settimeout(5)
    sock.sendall(payload)
    got = gw.recv_exact(sock, len(payload))
    check(got == payload, "%s: echo returned %r, expected %r" % (what, got, payload))


def refused_within(port, deadline):
    """Tries to connect until one attempt is refused; returns the time it happened or None."""
    attempts = 0
    while time.monotonic() < deadline and attempts < 200:
        attempts += 1
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        except ConnectionRefusedError:
            return time.monotonic()
        except OSError as e:
            gw.log("connect attempt failed with", e)
        else:
            c.close()
        time.sleep(0.02)
    return None


def tunnel_records(g, echo):
    """The access-log lines of tunnels to the echo server. The probes that check the listener is
    closed may race the close and be accepted just before it: they send nothing, so their lines
    must say so (protocol unknown, no target, no bytes) and they are left out."""
    tunnels = []
    for rec in g.access_records():
        gw.check_access_record(rec)
        if rec["target"] == "":
            check(rec["protocol"] == "unknown" and rec["bytes_up"] == 0 and rec["bytes_down"] == 0
                  and rec["result"] != "ok", "unexpected line for a silent probe connection: %r" % rec)
            continue
        tunnels.append(rec)
    return tunnels


def open_tunnel(g, echo):
    s = gw.socks5_connect(("127.0.0.1", g.port()), "127.0.0.1", echo.port)
    echo_roundtrip(s, b"hello before SIGTERM", "before SIGTERM")
    return s


def case_drain(binary, workdir, echo):
    g = gw.Gateway(binary, gw.config_yaml(limits={"shutdown_grace": "10s"}), workdir, name="drain.yaml")
    with gw.running(g):
        g.start()
        port = g.port()
        with open_tunnel(g, echo) as tunnel:
            check(len(g.stdout_lines()) == 0, "an access-log line appeared while the tunnel is open")

            t0 = time.monotonic()
            g.signal(signal.SIGTERM)
            refused_at = refused_within(port, t0 + 1.0)
            check(refused_at is not None, "new connections were still accepted 1 s after SIGTERM")
            gw.log("refused %.3f s after SIGTERM" % (refused_at - t0))
            # And by 1 s after SIGTERM every worker's acceptor is closed: they stay refused.
            time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
            for _ in range(5):
                try:
                    c = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                    c.close()
                    raise gw.TestFailure("a new connection was accepted after the listener stopped")
                except ConnectionRefusedError:
                    pass
                time.sleep(0.05)

            check(g.alive(), "edgerelay exited while a tunnel was open within the grace period:\n" + g.stderr_text())
            echo_roundtrip(tunnel, b"still echoing while draining", "while draining")
            time.sleep(0.5)
            check(g.alive(), "edgerelay exited while a tunnel was open within the grace period")
            echo_roundtrip(tunnel, b"and again", "while draining (2)")

            tunnel.close()
        t_close = time.monotonic()
        status = g.wait_exit(4)
        check(status is not None, "edgerelay did not exit within 4 s after the last tunnel closed "
              "(grace is 10 s; it should stop as soon as sessions drain)")
        check(status == 0, "edgerelay exit status %r after SIGTERM, expected 0" % status)
        gw.log("exited %.3f s after the tunnel closed" % (time.monotonic() - t_close))
        g.finish_readers()

        recs = tunnel_records(g, echo)
        check(len(recs) == 1, "expected one access-log line for the drained tunnel, got %d: %r" % (len(recs), recs))
        rec = recs[0]
        gw.check_access_record(rec)
        sent = len(b"hello before SIGTERM") + len(b"still echoing while draining") + len(b"and again")
        check(rec["result"] == "ok", "drained tunnel logged result %r" % rec["result"])
        check(rec["target"] == "127.0.0.1:%d" % echo.port, "drained tunnel target %r" % rec["target"])
        check(rec["bytes_up"] == sent and rec["bytes_down"] == sent,
              "drained tunnel bytes up/down %d/%d, expected %d each" % (rec["bytes_up"], rec["bytes_down"], sent))
        check(g.wait_stderr(r"shutting down", timeout=1) is not None, "no shutdown message on stderr")


def case_grace_expires(binary, workdir, echo):
    g = gw.Gateway(binary, gw.config_yaml(limits={"shutdown_grace": "1s"}), workdir, name="grace.yaml")
    with gw.running(g):
        g.start()
        with open_tunnel(g, echo) as tunnel:
            t0 = time.monotonic()
            g.signal(signal.SIGTERM)
            time.sleep(0.3)
            echo_roundtrip(tunnel, b"inside the grace period", "inside the grace period")

            # The gateway must close the tunnel once the grace period (1 s) is over.
            tunnel.settimeout(6)
            closed_at = None
            try:
                data = tunnel.recv(100)
                check(data == b"", "unexpected data on the tunnel: %r" % data)
                closed_at = time.monotonic()
            except ConnectionResetError:
                closed_at = time.monotonic()
            except socket.timeout:
                pass
            check(closed_at is not None, "the tunnel was still open 6 s after SIGTERM with shutdown_grace 1s")
            elapsed = closed_at - t0
            gw.log("tunnel closed %.3f s after SIGTERM" % elapsed)
            check(elapsed >= 0.9,
                  "the tunnel was closed %.3f s after SIGTERM, before shutdown_grace (1 s)" % elapsed)
            check(elapsed <= 3.0,
                  "the tunnel was closed %.3f s after SIGTERM, long after shutdown_grace (1 s)" % elapsed)

            status = g.wait_exit(max(0.1, t0 + 5 - time.monotonic()))
            check(status is not None, "edgerelay still running 5 s after SIGTERM with shutdown_grace 1s")
            check(status == 0, "edgerelay exit status %r after the grace period, expected 0" % status)
            g.finish_readers()
            recs = g.access_records()
            check(len(recs) == 1,
                  "expected one access-log line for the closed tunnel, got %d: %r" % (len(recs), recs))
            gw.check_access_record(recs[0])
            check(recs[0]["target"] == "127.0.0.1:%d" % echo.port, "closed tunnel target %r" % recs[0]["target"])
            sent = len(b"hello before SIGTERM") + len(b"inside the grace period")
            check(recs[0]["bytes_up"] == sent and recs[0]["bytes_down"] == sent,
                  "closed tunnel bytes up/down %d/%d, expected %d each"
                  % (recs[0]["bytes_up"], recs[0]["bytes_down"], sent))


def test(binary, workdir):
    with contextlib.closing(gw.EchoServer()) as echo:
        gw.run_parts(binary, workdir, (case_drain, case_grace_expires), echo)


if __name__ == "__main__":
    gw.main(test)
