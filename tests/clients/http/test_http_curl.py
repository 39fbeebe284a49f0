#!/usr/bin/env python3
"""curl as a real HTTP proxy client of edgerelay: CONNECT (-p -x), plain forward proxying (-x) of
GET and POST (Content-Length and chunked bodies, keep-alive between two URLs), and proxy
authentication (407 without credentials, success with --proxy-user). Every transfer is checked by
sha256, and every request leaves one access-log line."""

import os
import time

from http_common import gw, Origin, http_gateway, alice_gateway
from gateway import check


def download(g, origin, workdir, name, extra, index):
    out = os.path.join(workdir, "out-%d.bin" % index)
    r = gw.curl(extra + ["-x", "http://127.0.0.1:%d" % g.port(), "-o", out, "-w", "%{http_code}",
                         origin.url(name)])
    check(r.returncode == 0, "curl %s exited %d: %s" % (extra, r.returncode, r.stderr))
    check(r.stdout.strip() == "200", "curl %s: HTTP status %r" % (extra, r.stdout))
    return out


def test(binary, workdir):
    root = os.path.join(workdir, "www")
    os.makedirs(root)
    blob = os.urandom(3 * gw.MIB + 123)
    with open(os.path.join(root, "blob.bin"), "wb") as f:
        f.write(blob)
    blob_sha = gw.hashlib.sha256(blob).hexdigest()
    origin = Origin(root)
    target = "127.0.0.1:%d" % origin.port
    g = http_gateway(binary, workdir, "plain")
    with gw.running(g):
        g.start()
        # CONNECT tunnel (-p).
        before = len(g.access_records())
        out = download(g, origin, workdir, "blob.bin", ["-p"], 0)
        check(gw.sha256_file(out) == blob_sha, "CONNECT download differs")
        rec = g.one_new_record(before, "CONNECT", settle=0.2)
        check(rec["result"] == "ok" and rec["protocol"] == "http" and rec["target"] == target,
              "CONNECT access line: %r" % rec)
        gw.log("ok: curl -p -x", rec)

        # Plain forward GET.
        before = len(g.access_records())
        out = download(g, origin, workdir, "blob.bin", [], 1)
        check(gw.sha256_file(out) == blob_sha, "forwarded download differs")
        rec = g.one_new_record(before, "forward GET", settle=0.2)
        check(rec["result"] == "ok" and rec["protocol"] == "http" and rec["target"] == target,
              "forward GET access line: %r" % rec)
        check(rec["bytes_down"] >= len(blob), "forward GET bytes_down %r" % rec)
        check(rec["dialled"] == target and rec["rule"] == "loopback", "forward GET access line: %r" % rec)
        gw.log("ok: curl -x GET", rec)

        # Plain forward POST, Content-Length and chunked.
        upload = os.path.join(workdir, "upload.bin")
        with open(upload, "wb") as f:
            f.write(blob)
        for i, extra in enumerate([[], ["-H", "Transfer-Encoding: chunked"]]):
            before = len(g.access_records())
            r = gw.curl(["-x", "http://127.0.0.1:%d" % g.port(), "--data-binary", "@" + upload] + extra +
                        [origin.url("upload")])
            check(r.returncode == 0, "curl POST %s exited %d: %s" % (extra, r.returncode, r.stderr))
            check(r.stdout.strip() == "%d %s" % (len(blob), blob_sha), "POST %s: origin saw %r" % (extra, r.stdout))
            # Also keeps this line out of the next step's count.
            rec = g.one_new_record(before, "forward POST %s" % (extra or "content-length"), settle=0.2)
            check(rec["result"] == "ok" and rec["bytes_up"] >= len(blob), "forward POST access line: %r" % rec)
            gw.log("ok: curl -x POST", extra or "content-length")

        # Two URLs in one curl run: one client connection, one access line per request.
        before = len(g.access_records())
        r = gw.curl(["-x", "http://127.0.0.1:%d" % g.port(), "-o", os.path.join(workdir, "a"), "-o",
                     os.path.join(workdir, "b"), "-w", "%{num_connects} ", origin.url("blob.bin"),
                     origin.url("blob.bin")])
        check(r.returncode == 0, "curl keep-alive exited %d: %s" % (r.returncode, r.stderr))
        check(r.stdout.split() == ["1", "0"], "curl keep-alive: new connections per URL %r" % r.stdout)
        for n in "ab":
            check(gw.sha256_file(os.path.join(workdir, n)) == blob_sha, "keep-alive download %s differs" % n)
        # The earlier request's line may land after `before` was taken: keep the lines of the
        # keep-alive connection (the client of the last line) only.
        gw.wait_until(lambda: len([x for x in g.access_records()[before:]
                                   if x["client"] == g.access_records()[-1]["client"]]) >= 2, 10)
        time.sleep(0.3)
        last_client = g.access_records()[-1]["client"]
        recs = [x for x in g.access_records()[before:] if x["client"] == last_client]
        check(len(recs) == 2 and all(x["result"] == "ok" for x in recs), "keep-alive access lines: %r" % recs)
        gw.log("ok: keep-alive", recs)
        g.stop_ok()

    g = alice_gateway(binary, workdir)
    with gw.running(g, origin):
        g.start()
        proxy = ["-x", "http://127.0.0.1:%d" % g.port()]
        for extra in ([], ["-p"]):
            # %{http_connect} is the CONNECT reply's status, %{http_code} the forwarded response's.
            status = "%{http_connect}" if extra else "%{http_code}"
            r = gw.curl(proxy + extra + ["-o", os.devnull, "-w", status, origin.url("blob.bin")])
            code = r.stdout.strip()
            check(code == "407", "curl %s without credentials: status %r (%s)" % (extra, code, r.stderr))
            r = gw.curl(proxy + extra + ["--proxy-user", "alice:wrong", "-o", os.devnull, "-w", status,
                                         origin.url("blob.bin")])
            check(r.stdout.strip() == "407", "curl %s with a wrong password: status %r" % (extra, r.stdout))
            out = os.path.join(workdir, "auth.bin")
            r = gw.curl(proxy + extra + ["--proxy-user", "alice:s3cret", "-o", out, "-w", "%{http_code}",
                                         origin.url("blob.bin")])
            check(r.returncode == 0 and r.stdout.strip() == "200",
                  "curl %s --proxy-user: %r %s" % (extra, r.stdout, r.stderr))
            check(gw.sha256_file(out) == blob_sha, "authenticated download differs")
            gw.log("ok: proxy auth", extra or "forward")
        recs = g.access_records()
        check(any(x["user"] == "alice" and x["result"] == "ok" for x in recs), "no ok line for alice: %r" % recs)
        check(any(x["result"] != "ok" for x in recs), "no refused line: %r" % recs)
        g.stop_ok()


if __name__ == "__main__":
    gw.main(test)
