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


def wait_sent(sent):
    return gw.wait_until(lambda: bool(sent), 5)


def round_hup(binary, workdir, i):
    g = gw.Gateway(binary, gw.config_yaml(), workdir, name="hup-%d.yaml" % i)
    try:
        sent = signal_when_listening(g, signal.SIGHUP)
        try:
            g.start(wait_signal_handlers=False)
        except gw.TestFailure:
            pass  # it may already have died: the status below says how
        check(wait_sent(sent), "round %d: SIGHUP was not sent" % i)
        time.sleep(0.5)
        status = g.proc.poll()
        check(status is None, "round %d: edgerelay died (status %r; -1 means killed by SIGHUP) on a SIGHUP sent right after it printed "
              "'listening on'; stderr:\n%s" % (i, status, g.stderr_text()))
        check(g.wait_stderr(r"reload: ok", timeout=5) is not None,
              "round %d: no reload after an early SIGHUP:\n%s" % (i, g.stderr_text()))
        status = g.stop(timeout=10)
        check(status == 0, "round %d: exit status %r after SIGTERM" % (i, status))
    finally:
        g.kill()


def round_term(binary, workdir, i):
    g = gw.Gateway(binary, gw.config_yaml(), workdir, name="term-%d.yaml" % i)
    try:
        sent = signal_when_listening(g, signal.SIGTERM)
        try:
            g.start(wait_signal_handlers=False)
        except gw.TestFailure:
            pass  # it may already have exited: the status below says how
        check(wait_sent(sent), "round %d: SIGTERM was not sent" % i)
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
