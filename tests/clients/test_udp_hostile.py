#!/usr/bin/env python3
"""Hostile SOCKS5 UDP datagrams against the real binary, exact header bytes (issue "Trust at the door").

The rules deny loopback (127.0.0.0/8, [::1]) and then allow any destination from loopback clients,
so only the gateway's own checks stand between these datagrams and a loopback UDP service on the
wildcard address, where the kernel delivers 0.0.0.0 and :: :
- the unspecified addresses as IPv4 (0.0.0.0), IPv6 (::), IPv4-mapped (::ffff:0.0.0.0) and as
  domains (`0`, `0.0.0.0`, `0x0`) are never relayed, whatever the rules allow;
- domains that are no host name (a NUL byte, a 64-character label) are dropped before any rule;
- loopback in disguise (::ffff:127.0.0.1, the numeric domains 2130706433 and 127.1, ::1) is decided
  as loopback and denied.
The service receives nothing, and the association still relays to the one allowed destination
afterwards (and between the attacks).
"""

import socket

import gateway as gw
import udp_assoc
from gateway import check


def wildcard_service():
    """A UDP service on the wildcard address (dual-stack when the host has IPv6): returns it and
    whether it hears IPv6."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.close()
        return udp_assoc.UdpService("::"), True
    except OSError:
        return udp_assoc.UdpService("0.0.0.0"), False


def config(allowed):
    rules = ['{name: the-echo, action: allow, to: ["127.0.0.2:%d"]}' % allowed.port,
             '{name: no-loopback, action: deny, to: ["127.0.0.0/8", "[::1]"]}',
             '{name: loopback-clients, action: allow, from: ["127.0.0.0/8"]}']
    return gw.config_yaml(rules=rules, protocols="[socks5]")


def test(binary, workdir):
    target, v6 = wildcard_service()
    allowed = udp_assoc.UdpService("127.0.0.2")
    port = target.port
    attacks = [
        ("0.0.0.0", udp_assoc.header_v4("0.0.0.0", port)),
        ("0.0.0.1 (0.0.0.0/8)", udp_assoc.header_v4("0.0.0.1", port)),
        ("domain 0", udp_assoc.header_domain(b"0", port)),
        ("domain 0.0.0.0", udp_assoc.header_domain(b"0.0.0.0", port)),
        ("domain 0x0", udp_assoc.header_domain(b"0x0", port)),
        ("domain with NUL", udp_assoc.header_domain(b"localhost\x00.corp.example", port)),
        ("domain with NUL at the end", udp_assoc.header_domain(b"localhost\x00", port)),
        ("64-character label", udp_assoc.header_domain(b"a" * 64 + b".localhost", port)),
        ("127.0.0.1", udp_assoc.header_v4("127.0.0.1", port)),
        ("domain 2130706433", udp_assoc.header_domain(b"2130706433", port)),
        ("domain 127.1", udp_assoc.header_domain(b"127.1", port)),
        ("domain localhost", udp_assoc.header_domain(b"localhost", port)),
    ]
    if v6:
        attacks += [
            ("::", udp_assoc.header_v6("::", port)),
            ("::ffff:0.0.0.0", udp_assoc.header_v6("::ffff:0.0.0.0", port)),
            ("::ffff:127.0.0.1", udp_assoc.header_v6("::ffff:127.0.0.1", port)),
            ("::1", udp_assoc.header_v6("::1", port)),
        ]
    else:
        gw.log("no IPv6 here: the :: cases are left out")

    g = gw.Gateway(binary, config(allowed), workdir)
    assoc = None
    with gw.running(g, target, allowed):
        g.start()
        assoc = udp_assoc.Association(g.address())

        def relays_to_allowed(payload):
            header = udp_assoc.header_v4(allowed.host, allowed.port)
            assoc.send(header, payload)
            got = assoc.receive(3)
            check(got == header + payload, "the allowed destination's echo came back as %r" % got)

        relays_to_allowed(b"first")
        for what, header in attacks:
            assoc.send(header, b"attack: " + what.encode())
            # The next allowed datagram comes back only after the attack was decided: same pump, in order.
            relays_to_allowed(b"after " + what.encode())
            check(not target.received(), "the datagram to %s reached the loopback service: %r"
                  % (what, target.received()))
        # One more look after everything had time to arrive.
        check(gw.wait_until(lambda: target.received(), 0.5) == [],
              "the loopback service received %r" % target.received())
        check(assoc.receive(0.1) is None, "an attack datagram was answered")
        check(len(allowed.received()) == 1 + len(attacks), "the allowed destination saw %d datagrams, expected %d"
              % (len(allowed.received()), 1 + len(attacks)))
        assoc.close()
        rec = g.wait_access_records(1)[0]
        gw.check_access_record(rec)
        check(rec["protocol"] == "socks5-udp" and rec["result"] == "ok", "the association was logged as %r" % rec)
        g.stop_ok()


if __name__ == "__main__":
    gw.main(test)
