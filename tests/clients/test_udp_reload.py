#!/usr/bin/env python3
"""SOCKS5 UDP associations across a SIGHUP reload that denies a destination they use.

With `reload: {recheck_sessions: true}`:
- an association that relayed to the now-denied destination is closed by the gateway (its control
  TCP connection closes), a datagram sent after that is relayed nowhere, and its access-log line
  says `"detail":"revoked_by_reload"` with the denying rule;
- an association that only relayed to destinations still allowed stays open and goes on relaying,
  but its datagrams are decided by the new rules: one to the now-denied destination is dropped.
Without recheck, a live association keeps the rules it started under (as TCP tunnels do): it is not
closed and still relays to the destination the new rules deny for new sessions.
"""

import signal
import time

import gateway as gw
import udp_assoc
from gateway import check

ALLOW = ['{name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}']


def deny_first(service):
    return ['{name: no-first, action: deny, to: ["127.0.0.1:%d"]}' % service.port] + ALLOW


def config(rules, recheck):
    return gw.config_yaml(rules=rules, protocols="[socks5]") + "reload: {recheck_sessions: %s}\n" % (
        "true" if recheck else "false")


def relays(assoc, service, payload):
    """True when `payload` reaches `service` through `assoc` and its echo comes back."""
    seen = len(service.received())
    header = udp_assoc.header_v4(service.host, service.port)
    assoc.send(header, payload)
    got = assoc.receive(2)
    if got is None:
        return False
    check(got == header + payload, "the echo came back as %r" % got)
    check(service.received()[seen:] == [payload], "the service saw %r" % service.received()[seen:])
    return True


def not_relayed(assoc, service, payload, wait=0.5):
    """Sends `payload` to `service` through `assoc`; true when the service sees nothing within `wait`."""
    seen = len(service.received())
    try:
        assoc.send(udp_assoc.header_v4(service.host, service.port), payload)
    except OSError:
        pass  # the relay port is closed already: not relayed either
    time.sleep(wait)
    return len(service.received()) == seen and assoc.receive(0.05) is None


def reload(g, rules, recheck, generation):
    g.write_config(config(rules, recheck))
    mark = len(g.stderr_lines())
    g.signal(signal.SIGHUP)
    line = g.wait_stderr(r"reload: ok: generation %d\b" % generation, timeout=10, start=mark)
    check(line is not None, "no successful reload on stderr after SIGHUP:\n" + g.stderr_text())
    return mark


def with_recheck(binary, workdir, first, second):
    g = gw.Gateway(binary, config(ALLOW, True), workdir)
    revoked = kept = None
    with gw.running(g):
        g.start()
        revoked = udp_assoc.Association(g.address())
        kept = udp_assoc.Association(g.address())
        check(relays(revoked, first, b"to the first") and relays(revoked, second, b"and the second"),
              "before the reload: the association does not relay")
        check(relays(kept, second, b"only the second"), "before the reload: the second association does not relay")

        mark = reload(g, deny_first(first), True, 2)
        check(revoked.control_closed(5), "the association that relayed to the now-denied 127.0.0.1:%d is still open "
              "5 s after the reload with recheck" % first.port)
        check(not_relayed(revoked, second, b"after the revocation"),
              "a datagram of the revoked association was relayed after the gateway closed it")
        check(not_relayed(revoked, first, b"after the revocation"),
              "a datagram of the revoked association reached the denied destination")
        check(g.wait_stderr(r"closing UDP association .*127\.0\.0\.1:%d.*now denied by rule 'no-first'" % first.port,
                            timeout=5, start=mark) is not None,
              "the operator log does not say which association was closed and why:\n" + g.stderr_text())

        check(not kept.control_closed(0.3), "the association to allowed destinations only was closed")
        check(relays(kept, second, b"still allowed"), "the association that was kept no longer relays")
        check(not_relayed(kept, first, b"now denied"),
              "a live association relayed to a destination the new rules deny (it kept the old rules)")
        check(not kept.control_closed(0.2), "a denied datagram closed the association")

        records = g.wait_access_records(1)
        check(len(records) == 1, "expected one access-log line (the revoked association), got %r" % records)
        rec = records[0]
        gw.check_access_record(rec)
        check(rec["protocol"] == "socks5-udp" and rec.get("detail") == "revoked_by_reload"
              and rec["rule"] == "no-first", "the revoked association was logged as %r" % rec)
        check(rec["bytes_up"] == len(b"to the first") + len(b"and the second"),
              "the revoked association relayed more than before the reload: %r" % rec)
        kept.close()
        g.stop_ok()
    revoked.close()


def without_recheck(binary, workdir, first):
    g = gw.Gateway(binary, config(ALLOW, False), workdir, name="no-recheck.yaml")
    assoc = None
    with gw.running(g):
        g.start()
        assoc = udp_assoc.Association(g.address())
        check(relays(assoc, first, b"before"), "before the reload: the association does not relay")
        reload(g, deny_first(first), False, 2)
        fresh = udp_assoc.Association(g.address())
        check(not_relayed(fresh, first, b"new session"), "a new association relayed to a destination now denied")
        fresh.close()
        check(not assoc.control_closed(0.3), "without recheck the association was closed by the reload")
        check(relays(assoc, first, b"after"), "without recheck the live association lost the rules it started under")
        assoc.close()
        g.stop_ok()


def test(binary, workdir):
    first = udp_assoc.UdpService("127.0.0.1")
    second = udp_assoc.UdpService("127.0.0.2")
    try:
        with_recheck(binary, workdir, first, second)
        without_recheck(binary, workdir, first)
    finally:
        first.close()
        second.close()


if __name__ == "__main__":
    gw.main(test)
