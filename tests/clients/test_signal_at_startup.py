#!/usr/bin/env python3
"""Signals right after start-up: once edgerelay has printed `listening on` it serves sessions, so a
service manager or operator may signal it from then on. A SIGHUP sent as soon as that line appears
must reload (not kill the process), and a SIGTERM sent as soon as it appears must drain and exit 0
(not die by the signal's default action). Several rounds, because the window is a race."""

import signal
import time

import gateway as gw
from gateway import check

ROUNDS = 5


def signal_when_listening(g, signo):
    """Sends signo from the stderr reader thread the moment the `listening on` line is read."""
    sent = []

    def hook(line):
        if not sent and gw.LISTENING_RE.search(line):
            sent.append(time.monotonic())
            g.proc.send_signal(signo)

    g.on_stderr_line = hook
    return sent


def start_signalled(g, signo, i):
    """Starts g and sends signo the moment it prints `listening on`; checks that it was sent."""
    sent = signal_when_listening(g, signo)
    try:
        g.start(wait_signal_handlers=False)
    except gw.TestFailure:
        pass  # it may already have died or exited: the caller's checks of its status say how
    check(gw.wait_until(lambda: bool(sent), 5), "round %d: %s was not sent" % (i, signo.name))


def round_hup(binary, workdir, i):
    g = gw.Gateway(binary, gw.config_yaml(), workdir, name="hup-%d.yaml" % i)
    try:
        start_signalled(g, signal.SIGHUP, i)
        time.sleep(0.5)
        status = g.proc.poll()
        check(status is None, "round %d: edgerelay died (status %r; -1 means killed by SIGHUP) on a SIGHUP sent right after it printed "
              "'listening on'; stderr:\n%s" % (i, status, g.stderr_text()))
        check(g.wait_stderr(r"reload: ok", timeout=5) is not None,
              "round %d: no reload after an early SIGHUP:\n%s" % (i, g.stderr_text()))
        g.stop_ok(what="round %d: " % i)
    finally:
        g.kill()


def round_term(binary, workdir, i):
    g = gw.Gateway(binary, gw.config_yaml(), workdir, name="term-%d.yaml" % i)
    try:
        start_signalled(g, signal.SIGTERM, i)
        status = g.wait_exit(10)
        check(status is not None, "round %d: edgerelay still running 10 s after an early SIGTERM" % i)
        check(status == 0, "round %d: edgerelay exit status %r on a SIGTERM sent right after it printed "
              "'listening on' (expected a clean drain and 0; %d means killed by the signal); stderr:\n%s"
              % (i, status, -signal.SIGTERM, g.stderr_text()))
    finally:
        g.kill()


def test(binary, workdir):
    for i in range(ROUNDS):
        round_hup(binary, workdir, i)
    for i in range(ROUNDS):
        round_term(binary, workdir, i)


if __name__ == "__main__":
    gw.main(test)
