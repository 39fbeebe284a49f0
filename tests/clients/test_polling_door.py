#!/usr/bin/env python3
"""The gateway's HTTP-polling door (protocol polling) driven by a client written from
docs/tunnel-protocol.md: 64 MiB both ways in order with fin both ways, retries of lost requests,
replays and gaps (409), sessions bound to their user and address (404), idle expiry, a denied
target (403), one access line per session, and a session's requests spread over many
connections on two workers."""

import hashlib
import json
import os
import socket
import time

from gateway import (EchoServer, Gateway, CountingService, check, config_yaml, log, main, make_password_hash,
                     run_parts, running, wait_until)
from polling_client import PollClient, PollError, both_ways


def polling_gateway(binary, workdir, extra="", users="", auth="none", rules=None, workers=2):
    text = config_yaml(listener_extra=extra, protocols="[polling]", auth=auth, users=users, rules=rules)
    return Gateway(binary, text, workdir, workers=workers)


def polling_lines(gw):
    return [r for r in gw.access_records() if r.get("protocol") == "polling"]


def bulk_both_ways(binary, workdir):
    echo = EchoServer()
    gw = polling_gateway(binary, workdir)
    with running(gw, echo):
        gw.start()
        host, port = gw.ports["test"]
        c = PollClient(host, port)
        c.open("127.0.0.1:%d" % echo.port)
        data = os.urandom(64 << 20)
        started = time.monotonic()
        back = both_ways(c, data)
        took = time.monotonic() - started
        check(len(back) == len(data), "got %d bytes back of %d" % (len(back), len(data)))
        check(hashlib.sha256(back).digest() == hashlib.sha256(data).digest(), "bytes came back changed or reordered")
        log("64 MiB each way in %.1fs" % took)
        c.close()
        check(wait_until(lambda: len(polling_lines(gw)) == 1, 10), "no access line for the session")
        time.sleep(0.3)
        lines = polling_lines(gw)
        check(len(lines) == 1, "one line per session, got %d: %r" % (len(lines), lines))
        rec = lines[0]
        check(rec["result"] == "ok" and rec["bytes_up"] == len(data) and rec["bytes_down"] == len(data),
              "access line %r" % rec)
        others = [r for r in gw.access_records() if r.get("protocol") != "polling"]
        check(not others, "requests logged on their own: %r" % others[:3])


def sequence_errors(binary, workdir):
    echo = EchoServer()
    gw = polling_gateway(binary, workdir)
    with running(gw, echo):
        gw.start()
        host, port = gw.ports["test"]
        target = "127.0.0.1:%d" % echo.port

        # A retry of the last up (the 204 was lost) is acknowledged without delivering twice.
        c = PollClient(host, port)
        c.open(target)
        check(c.up(0, b"hello ")[0] == 204, "up 0")
        check(c.up(0, b"hello ")[0] == 204, "a retry of up 0 is a 204")
        check(c.up(1, b"world")[0] == 204, "up 1")
        got = b""
        seq = 0
        first = None
        while len(got) < 11:
            status, r, body = c.down(seq)
            check(status == 200, "down %d: %d" % (seq, status))
            if body:
                if first is None:
                    first = (seq, body)
                got += body
                seq += 1
        check(got == b"hello world", "delivered %r (a retry must not deliver twice)" % got)
        # A lost down response: asking for the same seq again gets the same bytes.
        status, r, again = c.down(first[0] if seq - 1 == first[0] else seq - 1)
        check(status == 200 and again and again == (first[1] if seq - 1 == first[0] else again),
              "a repeated down gets its chunk again")
        check(c.up(0, b"hello ")[0] == 409, "a replay of an older seq is a 409")
        check(c.down(seq)[0] == 404, "the session ended with the 409")

        # A retry with other bytes under the same seq is a conflict, not a duplicate.
        c = PollClient(host, port)
        c.open(target)
        check(c.up(0, b"a")[0] == 204, "up 0")
        check(c.up(0, b"b")[0] == 409, "same seq, other bytes: 409")

        # A gap.
        c = PollClient(host, port)
        c.open(target)
        check(c.up(2, b"x")[0] == 409, "a gap is a 409")
        # A down gap.
        c = PollClient(host, port)
        c.open(target)
        check(c.down(5)[0] == 409, "a down gap is a 409")

        # Malformed requests are refused before any lookup.
        c = PollClient(host, port)
        c.open(target)
        check(c.request("POST", "/poll/%s/up?seq=x" % c.id)[0] == 400, "bad seq")
        c.open(target)
        check(c.request("GET", "/poll/%s/up?seq=0" % c.id)[0] == 405, "up is a POST")
        c.open(target)
        check(c.up(0, b"z" * 65537)[0] == 413, "a body above 64 KiB")
        c.open(target)
        check(c.up(0, b"", control="reset")[0] == 400, "unknown control")
        check(c.request("POST", "/poll/open")[0] == 400, "open without a target")
        check(c.close_session()[0] == 204, "close")
        check(c.down(0)[0] == 404, "a closed session is gone")


def bound_to_user_and_address(binary, workdir):
    echo = EchoServer()
    users = "".join("  - {name: %s, password: \"%s\"}\n" % (u, make_password_hash(binary, u + "-pw"))
                    for u in ("alice", "bob"))
    gw = polling_gateway(binary, workdir, users=users, auth="password")
    with running(gw, echo):
        gw.start()
        host, port = gw.ports["test"]
        target = "127.0.0.1:%d" % echo.port
        try:
            PollClient(host, port).open(target)
            raise AssertionError("open without credentials succeeded")
        except PollError as e:
            check(e.status == 401, "no credentials: %d" % e.status)
        alice = PollClient(host, port, user="alice", password="alice-pw")
        sid = alice.open(target)
        bob = PollClient(host, port, user="bob", password="bob-pw")
        check(bob.down(0, sid=sid)[0] == 404, "another user gets 404")
        check(bob.up(0, b"x", sid=sid)[0] == 404, "another user's up gets 404")
        elsewhere = PollClient(host, port, user="alice", password="alice-pw", source="127.0.0.2")
        check(elsewhere.down(0, sid=sid)[0] == 404, "another address gets 404")
        check(alice.up(0, b"ping", control="fin")[0] == 204, "the owner's up still works")
        check(alice.receive_all() == b"ping", "the owner's session is intact")


def idle_expiry(binary, workdir):
    held = []
    service = CountingService(serve=lambda conn, peer: held.append(conn))
    gw = polling_gateway(binary, workdir, extra=", polling_idle: 1s")
    with running(gw, service):
        gw.start()
        host, port = gw.ports["test"]
        c = PollClient(host, port)
        c.open("127.0.0.1:%d" % service.port)
        check(wait_until(lambda: held, 5), "the upstream was not dialled")
        # A long poll is answered empty after at most half of polling_idle, and keeps the session.
        t0 = time.monotonic()
        status, r, body = c.down(0)
        check(status == 200 and body == b"" and r.getheader("Edgerelay-Control") is None,
              "an empty long poll: %d %r" % (status, body))
        check(time.monotonic() - t0 < 2, "the long poll was held too long")
        time.sleep(2.5)
        check(c.down(0)[0] == 404, "an idle session expires")
        held[0].settimeout(5)
        check(held[0].recv(10) == b"", "the expired session's upstream was closed")
        check(wait_until(lambda: polling_lines(gw), 5), "no access line for the expired session")


def denied(binary, workdir):
    rules = ['{name: only-loopback-port-1, action: allow, to: ["127.0.0.1:1"]}']
    echo = EchoServer()
    gw = polling_gateway(binary, workdir, rules=rules)
    with running(gw, echo):
        gw.start()
        host, port = gw.ports["test"]
        try:
            PollClient(host, port).open("127.0.0.1:%d" % echo.port)
            raise AssertionError("a denied target was opened")
        except PollError as e:
            check(e.status == 403, "denied: %d" % e.status)
        check(wait_until(lambda: any(r["result"] == "denied" for r in polling_lines(gw)), 5),
              "no denied line: %r" % gw.access_records())


def many_connections_two_workers(binary, workdir):
    echo = EchoServer()
    gw = polling_gateway(binary, workdir, workers=2)
    with running(gw, echo):
        gw.start()
        host, port = gw.ports["test"]
        c = PollClient(host, port, fresh=True)
        c.open("127.0.0.1:%d" % echo.port)
        sent = b"".join(b"%04d|" % i for i in range(200))
        got = both_ways(c, sent)
        check(got == sent, "over fresh connections: %r..." % got[:40])


def test(binary, workdir):
    run_parts(binary, workdir, [sequence_errors, bound_to_user_and_address, idle_expiry, denied,
                                many_connections_two_workers, bulk_both_ways])


if __name__ == "__main__":
    main(test)
