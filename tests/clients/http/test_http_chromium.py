#!/usr/bin/env python3
"""Headless Chromium (Debian `chromium`) loads a local page through edgerelay, once with
--proxy-server=http:// (plain forward proxying) and once with socks5://; the page's DOM must hold
its marker and the access log must show the request went through the gateway."""

import os
import subprocess
import tempfile
import time

from http_common import gw, Origin, http_gateway
from gateway import check

MARKER = "edgerelay-chromium-marker-7f3a"


def chromium(proxy, url):
    profile = tempfile.mkdtemp(prefix="edgerelay-chromium-")
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--proxy-server=" + proxy,
           "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=5000", "--dump-dom", url]
    gw.log("running", " ".join(cmd))
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=gw.clean_env())
    finally:
        subprocess.run(["rm", "-rf", profile], timeout=30)


def test(binary, workdir):
    root = os.path.join(workdir, "www")
    os.makedirs(root)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><html><head><title>t</title></head><body><p id=m>%s</p>"
                "<img src=\"pixel.txt\"></body></html>\n" % MARKER)
    with open(os.path.join(root, "pixel.txt"), "w") as f:
        f.write("x" * 100)
    origin = Origin(root)
    g = http_gateway(binary, workdir, "gw")
    target = "127.0.0.1:%d" % origin.port
    with gw.running(g, origin):
        g.start()
        for scheme in ("http", "socks5"):
            before = len(g.access_records())
            r = chromium("%s://127.0.0.1:%d" % (scheme, g.port()), origin.url("index.html"))
            check(MARKER in r.stdout, "chromium via %s: marker missing (rc %d)\nstdout: %s\nstderr: %s"
                  % (scheme, r.returncode, r.stdout[:2000], r.stderr[-3000:]))
            gw.wait_until(lambda: len(g.access_records()) > before, 10)
            time.sleep(0.5)
            recs = [x for x in g.access_records()[before:] if x["target"] == target]
            # The page's own request ends ok; Chromium may abandon a subresource when --dump-dom exits.
            check(any(x["result"] == "ok" for x in recs) and
                  all(x["result"] == "ok" or x.get("detail") == "client_gone" for x in recs),
                  "chromium via %s: access lines %r" % (scheme, g.access_records()[before:]))
            check(all(x["protocol"] == ("http" if scheme == "http" else "socks5") for x in recs),
                  "chromium via %s: protocols %r" % (scheme, recs))
            gw.log("ok: chromium via", scheme, recs)
        g.stop_ok()


if __name__ == "__main__":
    gw.main(test)
