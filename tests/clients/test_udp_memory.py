#!/usr/bin/env python3
"""What an idle SOCKS5 UDP association costs the gateway: N associations (300 by default), each of
which relayed one datagram to a loopback UDP echo and got its answer, then sit idle. The gateway's
resident memory (VmRSS) grows by less than 24 KiB per association: an idle association holds no
receive buffer, they are borrowed from the worker only while datagrams move.

usage: test_udp_memory.py EDGERELAY [--associations N] [--max-kib K]
Prints the RSS before and after and the KiB per association (a RESULT line).
"""

import argparse
import sys
import time

import gateway as gw
import udp_assoc
from gateway import check


def relay_once(assoc, service, payload):
    assoc.send(udp_assoc.header_v4(service.host, service.port), payload)
    got = assoc.receive(5)
    check(got == udp_assoc.header_v4(service.host, service.port) + payload,
          "association %r: echo came back as %r" % (assoc.relay, got))


def measure(binary, workdir, count, max_kib):
    service = udp_assoc.UdpService()
    limits = {"idle_timeout": "300s", "per_source": count + 100, "max_sessions": count + 100}
    g = gw.Gateway(binary, gw.config_yaml(limits=limits, protocols="[socks5]"), workdir)
    held = []
    try:
        with gw.running(g, service):
            g.start()
            # Warm up: the workers' first associations allocate what every later one reuses.
            for i in range(16):
                a = udp_assoc.Association(g.address())
                relay_once(a, service, b"warm-up %d" % i)
                a.close()
            check(gw.wait_until(lambda: len(g.stdout_lines()) >= 16, 10), "warm-up associations did not end")
            time.sleep(0.5)
            before = gw.vm_rss_kib(g.pid)
            started = time.monotonic()
            for i in range(count):
                a = udp_assoc.Association(g.address())
                held.append(a)
                relay_once(a, service, b"datagram %d" % i)
            time.sleep(1.0)
            after = gw.vm_rss_kib(g.pid)
            per = (after - before) / count
            gw.log("%d idle associations, each relayed one datagram (opened in %.1f s): RSS %d KiB -> %d KiB, "
                   "%.1f KiB per association" % (count, time.monotonic() - started, before, after, per))
            print("RESULT associations=%d rss_before_kib=%d rss_after_kib=%d kib_per_association=%.1f"
                  % (count, before, after, per), flush=True)
            # Still alive and still relaying: the figure is for live associations.
            for a in (held[0], held[-1]):
                relay_once(a, service, b"still here")
            check(len(service.received()) == 16 + count + 2,
                  "the echo saw %d datagrams, expected %d" % (len(service.received()), 16 + count + 2))
            check(per < max_kib, "an idle association costs %.1f KiB of RSS, more than %d KiB" % (per, max_kib))
            for a in held:
                a.close()
            held = []
            g.stop_ok()
    finally:
        for a in held:
            a.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--associations", type=int, default=300)
    ap.add_argument("--max-kib", type=int, default=24)
    args = ap.parse_args()
    sys.argv = [sys.argv[0], args.binary]
    gw.main(lambda binary, workdir: measure(binary, workdir, args.associations, args.max_kib))


if __name__ == "__main__":
    main()
