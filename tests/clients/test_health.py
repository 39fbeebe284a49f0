#!/usr/bin/env python3
"""`edgerelay health --config F`: one line per backend with its state after one probe round; exit 0
when every backend answers, 1 when one is down (a TCP probe to portbase + 1)."""

import os
import re
import socket

import gateway as gw
from gateway import check


def test(binary, workdir):
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(8)
    down = socket.socket()
    down.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    up_port, down_port = up.getsockname()[1], down.getsockname()[1]
    try:
        cfg = os.path.join(workdir, "health.yaml")

        def write(backends):
            with open(cfg, "w") as f:
                f.write('listeners:\n  - {name: test, bind: "127.0.0.1:0", protocols: [socks5]}\n'
                        "backends:\n" + backends + "rules:\n  - {name: all, action: allow}\n")

        write("  - {name: web, host: 127.0.0.1, portbase: %d, health_check: {interval: 1s, timeout: 1s}}\n"
              % (up_port - 1))
        r = gw.run([binary, "health", "--config", cfg], timeout=30)
        check(r.returncode == 0, "health with every backend up exited %d:\n%s%s" % (r.returncode, r.stdout, r.stderr))
        check(re.search(r"^backend web: up\b", r.stdout, re.M) is not None, "no 'backend web: up' line:\n" + r.stdout)

        write("  - {name: web, host: 127.0.0.1, portbase: %d}\n"
              "  - {name: db, host: 127.0.0.1, portbase: %d, health_check: {interval: 1s, timeout: 500ms}}\n"
              % (up_port - 1, down_port - 1))
        r = gw.run([binary, "health", "--config", cfg], timeout=30)
        check(r.returncode == 1, "health with a backend down exited %d:\n%s%s" % (r.returncode, r.stdout, r.stderr))
        check(re.search(r"^backend web: up\b", r.stdout, re.M) is not None, "no 'backend web: up' line:\n" + r.stdout)
        check(re.search(r"^backend db: down\b", r.stdout, re.M) is not None, "no 'backend db: down' line:\n" + r.stdout)
        gw.log("ok:", r.stdout.strip().replace("\n", " | "))
    finally:
        up.close()
        down.close()


if __name__ == "__main__":
    gw.main(test)
