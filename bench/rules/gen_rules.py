#!/usr/bin/env python3
"""Write an edgerelay config with N rules, the shape of an imported blocklist plus per-site allow lists.

usage: gen_rules.py N [--seed S] [--port P] > config.yaml

The mix (by rule index, deterministic for a seed): deny one host name (40%), deny a *.suffix (15%),
deny an IPv4 CIDR (15%) or an IPv6 CIDR (5%), allow from a site CIDR to a host:port or a CIDR on a
port range (15%), per-user and per-listener rules (8%), backend:NAME rules (2%). The last rule
allows loopback clients everywhere. Names, networks and ports are distinct enough that few rules
shadow each other, as in a real list. Listener `edge` binds 127.0.0.1:P (default 0: any free port).
"""
import argparse
import base64
import hashlib
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    out = ["listeners:",
           f"  - {{name: edge, bind: \"127.0.0.1:{args.port}\", protocols: [socks5, http]}}",
           "  - {name: door, bind: \"127.0.0.2:0\", protocols: [socks4]}",
           "backends:"]
    backends = [f"db{i}" for i in range(8)]
    for i, b in enumerate(backends):
        out.append(f"  - {{name: {b}, host: {b}.internal, portbase: {5000 + 10 * i}}}")
    out.append("users:")
    users = [f"user{i}" for i in range(16)]
    # A well-formed hash of "pw" (1000 rounds, the loader's minimum): the bench measures rules, not logins.
    salt = b"edgerelay-bench!"
    key = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000)
    pw = f"pbkdf2-sha256$1000${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    for u in users:
        out.append(f"  - {{name: {u}, password: \"{pw}\"}}")
    out.append("log: {level: warn, access: off}")
    out.append("rules:")
    n = max(args.n - 1, 0)
    for i in range(n):
        kind = rnd.random()
        name = f"r{i}"
        if kind < 0.40:
            out.append(f"  - {{name: {name}, action: deny, to: [h{i}.block{rnd.randrange(1000)}.example]}}")
        elif kind < 0.55:
            out.append(f"  - {{name: {name}, action: deny, to: [\"*.s{i}.example\"]}}")
        elif kind < 0.70:
            a, b, prefix = 11 + (i >> 16) % 89, (i >> 8) & 255, rnd.choice([16, 24, 24, 28, 32])
            c = i & 255 if prefix >= 24 else 0
            d = (rnd.randrange(16) * 16 if prefix == 28 else rnd.randrange(256) if prefix == 32 else 0)
            if prefix == 16:
                # Their own first octets, so that a /16 does not swallow the longer prefixes.
                out.append(f"  - {{name: {name}, action: deny, to: [{101 + (i >> 8) % 100}.{i & 255}.0.0/16]}}")
            else:
                out.append(f"  - {{name: {name}, action: deny, to: [\"{a}.{b}.{c}.{d}/{prefix}\"]}}")
        elif kind < 0.75:
            out.append(f"  - {{name: {name}, action: deny, to: [\"[2001:db8:{i >> 16:x}:{i & 0xffff:x}::/64]\"]}}")
        elif kind < 0.90:
            site = f"10.{(i >> 8) & 255}.{i & 255}.0/24"
            if rnd.random() < 0.5:
                to = f"app{i}.corp.example:443"
            else:
                lo = rnd.randrange(1024, 60000)
                to = f"172.16.{i & 255}.0/24:{lo}-{lo + rnd.randrange(100)}"
            out.append(f"  - {{name: {name}, action: allow, from: [\"{site}\"], to: [\"{to}\"]}}")
        elif kind < 0.94:
            out.append(f"  - {{name: {name}, action: allow, users: [{rnd.choice(users)}], "
                       f"to: [\"u{i}.corp.example\"]}}")
        elif kind < 0.98:
            out.append(f"  - {{name: {name}, action: deny, listeners: [door], to: [\"l{i}.example:{rnd.randrange(1, 65535)}\"]}}")
        else:
            out.append(f"  - {{name: {name}, action: allow, from: [\"192.168.{i & 255}.0/24\"], "
                       f"to: [\"backend:{rnd.choice(backends)}\"]}}")
    out.append("  - {name: loopback, action: allow, from: [127.0.0.0/8, \"::1\"]}")
    out.append("allow_root: true")  # the bench runs as root (CI, this machine)
    print("\n".join(out))


if __name__ == "__main__":
    main()
