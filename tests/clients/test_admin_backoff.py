#!/usr/bin/env python3
"""Failed admin logins back off per source, as the proxy listeners' logins do (limits.auth_failures).

With max 3, backoff 3s: three wrong passwords from 127.0.0.2 get 401; from then on every request
from 127.0.0.2 gets 429 with Retry-After, even with the right password, and costs no check; the
operator log says so once for the back-off. 127.0.0.3 is not affected and gets 200 with the right
password meanwhile. Once the back-off has passed, 127.0.0.2 with the right password gets 200.
Requests without credentials (a scraper's first try) are never counted."""

import base64
import http.client
import re
import time

import gateway as gw
from gateway import check

ADMIN_RE = r" admin: listening on 127\.0\.0\.1:(\d+)"
THROTTLED_RE = r"admin: source 127\.0\.0\.2 throttled after 3 failed logins"


def request(port, source, user=None, password=None):
    headers = {}
    if user is not None:
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        headers["Authorization"] = "Basic " + token
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        c.request("GET", "/status", headers=headers)
        r = c.getresponse()
        r.read()
        return r.status, dict(r.getheaders())
    finally:
        c.close()


def test(binary, workdir):
    h = gw.make_password_hash(binary, "s3cret-admin")
    users = '  - {name: ops, password: "%s"}\n' % h
    text = gw.config_yaml(users=users, limits={"auth_failures": "{max: 3, window: 60s, backoff: 3s, user_delay: 0ms}"})
    text += 'admin: {bind: "127.0.0.1:0", allow: ["127.0.0.0/8"], users: [ops]}\n'
    g = gw.Gateway(binary, text, workdir)
    with gw.running(g):
        g.start()
        line = g.wait_stderr(ADMIN_RE, timeout=5)
        check(line is not None, "no admin listener:\n" + g.stderr_text())
        port = int(re.search(ADMIN_RE, line).group(1))

        for _ in range(5):
            status, _ = request(port, "127.0.0.2")
            check(status == 401, "no credentials: %r, expected 401" % status)
        for i in range(3):
            status, _ = request(port, "127.0.0.2", "ops", "wrong-%d" % i)
            check(status == 401, "wrong password %d: %r, expected 401" % (i, status))
        started = time.monotonic()
        for password in ("wrong-again", "s3cret-admin"):
            status, headers = request(port, "127.0.0.2", "ops", password)
            check(status == 429, "in the back-off, %s: %r, expected 429" % (password, status))
            check(headers.get("Retry-After") == "3", "Retry-After %r, expected 3" % headers.get("Retry-After"))
        status, _ = request(port, "127.0.0.3", "ops", "s3cret-admin")
        check(status == 200, "another source with the right password: %r, expected 200" % status)
        lines = [l for l in g.stderr_lines() if re.search(THROTTLED_RE, l)]
        check(len(lines) == 1, "the back-off was logged %d times, expected once:\n%s" % (len(lines), g.stderr_text()))
        check("s3cret" not in g.stderr_text() and "wrong-" not in g.stderr_text(), "a password reached the log")

        time.sleep(max(0.0, 3.3 - (time.monotonic() - started)))
        status, _ = request(port, "127.0.0.2", "ops", "s3cret-admin")
        check(status == 200, "after the back-off, the right password: %r, expected 200" % status)
        g.stop_ok()


if __name__ == "__main__":
    gw.main(test)
