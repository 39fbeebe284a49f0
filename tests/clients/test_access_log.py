#!/usr/bin/env python3
"""Access log and credentials, with curl as the client:
- every stdout line is one JSON object with exactly the docs/config.md fields (detail optional);
- a request denied by a rule fails in curl (SOCKS5 REP 0x02 on the wire) and logs result denied and
  the rule's name;
- on an `auth: password` listener, curl with the right user/password (RFC 1929) gets through and
  the line names the user; a wrong password fails and logs bad_credentials;
- neither password ever appears in edgerelay's stdout or stderr."""

import os
import secrets

import gateway as gw
from gateway import check

PASSWORD = "Pw-" + secrets.token_hex(12)
WRONG_PASSWORD = "Wrong-" + secrets.token_hex(12)


def config(pw_hash):
    return (
        "listeners:\n"
        '  - {name: test, bind: "127.0.0.1:0", protocols: [socks5, socks4], auth: none}\n'
        '  - {name: secure, bind: "127.0.0.1:0", protocols: [socks5], auth: password}\n'
        "users:\n"
        '  - {name: alice, password: "%s"}\n'
        "rules:\n"
        '  - {name: no-two, action: deny, to: ["127.0.0.2"]}\n'
        '  - {name: loopback, action: allow, from: ["127.0.0.0/8", "::1"], to: ["127.0.0.0/8", "[::1]", "localhost"]}\n'
        "limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 3s}\n"
        "log: {level: info, access: json}\n" % pw_hash)


def test(binary, workdir):
    pw_hash = gw.make_password_hash(binary, PASSWORD)
    server = gw.FileServer(os.path.join(workdir, "www"))
    g = gw.Gateway(binary, config(pw_hash), workdir)
    with gw.running(g, server):
        g.start(listeners=("test", "secure"))
        proxy = "127.0.0.1:%d" % g.port("test")
        secure = "127.0.0.1:%d" % g.port("secure")
        out = os.path.join(workdir, "out.bin")

        # 1. allowed, anonymous.
        before = len(g.stdout_lines())
        r = gw.curl(["--socks5", proxy, "-o", out, server.url()])
        check(r.returncode == 0, "allowed curl exited %d: %s" % (r.returncode, r.stderr))
        check(gw.sha256_file(out) == server.sha256, "allowed download corrupted")
        rec = g.one_new_record(before, "allowed")
        check(rec["result"] == "ok" and rec["rule"] == "loopback" and rec["listener"] == "test",
              "allowed session logged as %r" % rec)

        # 2. denied by the first rule: curl fails, REP 0x02 on the wire, logged as denied by no-two.
        os.unlink(out)
        before = len(g.stdout_lines())
        r = gw.curl(["--socks5", proxy, "-o", out, "http://127.0.0.2:%d/%s" % (server.port, server.name)])
        check(r.returncode != 0, "curl through a denying rule succeeded")
        check(r.returncode in (7, 97), "curl exit %d for a denied SOCKS5 request, expected 97 (CURLE_PROXY; "
              "7 before curl 7.73): %s"
              % (r.returncode, r.stderr))
        check("(2)" in r.stderr, "curl did not report SOCKS5 reply 2 (not allowed by ruleset): %r" % r.stderr)
        check(not os.path.exists(out) or os.path.getsize(out) == 0, "denied curl wrote data")
        rec = g.one_new_record(before, "denied")
        check(rec["result"] == "denied", "denied session has result %r" % rec["result"])
        check(rec["rule"] == "no-two", "denied session has rule %r, expected no-two" % rec["rule"])
        check(rec["target"] == "127.0.0.2:%d" % server.port, "denied session target %r" % rec["target"])
        check(rec["protocol"] == "socks5", "denied session protocol %r" % rec["protocol"])
        check(rec["bytes_down"] == 0 and rec["bytes_up"] == 0, "denied session relayed bytes: %r" % rec)

        # Same request with exact bytes: the reply code must be 0x02.
        before = len(g.stdout_lines())
        try:
            s = gw.socks5_connect(("127.0.0.1", g.port("test")), "127.0.0.2", server.port)
            s.close()
            raise gw.TestFailure("raw SOCKS5 CONNECT to a denied target succeeded")
        except gw.SocksError as e:
            check(e.code == 0x02, "raw SOCKS5 CONNECT to a denied target: %s, expected REP 0x02" % e)
        rec = g.one_new_record(before, "denied (raw)")
        check(rec["result"] == "denied" and rec["rule"] == "no-two", "raw denied session logged as %r" % rec)

        # 3. password listener: the right password gets through, in both curl spellings.
        for args in (["-x", "socks5://alice:%s@%s" % (PASSWORD, secure)],
                     ["--socks5", secure, "--proxy-user", "alice:%s" % PASSWORD]):
            if os.path.exists(out):
                os.unlink(out)
            before = len(g.stdout_lines())
            r = gw.curl(args + ["-o", out, server.url()])
            check(r.returncode == 0, "curl with the right password (%s) exited %d: %s" % (args[0], r.returncode,
                                                                                         r.stderr))
            check(gw.sha256_file(out) == server.sha256, "authenticated download corrupted")
            rec = g.one_new_record(before, "authenticated")
            check(rec["result"] == "ok", "authenticated session result %r" % rec["result"])
            check(rec["user"] == "alice", "authenticated session user %r, expected alice" % rec["user"])
            check(rec["listener"] == "secure", "authenticated session listener %r" % rec["listener"])
            check(rec["bytes_down"] >= server.size, "authenticated session bytes_down %d" % rec["bytes_down"])

        # 4. wrong password and no credentials fail.
        if os.path.exists(out):
            os.unlink(out)
        before = len(g.stdout_lines())
        r = gw.curl(["--socks5", secure, "--proxy-user", "alice:%s" % WRONG_PASSWORD, "-o", out, server.url()])
        check(r.returncode != 0, "curl with a wrong password succeeded")
        check(not os.path.exists(out) or os.path.getsize(out) == 0, "curl with a wrong password got data")
        rec = g.one_new_record(before, "wrong password")
        check(rec["result"] == "bad_credentials", "wrong password logged as result %r" % rec["result"])
        check(rec["bytes_down"] == 0, "wrong password session relayed bytes: %r" % rec)

        try:
            s = gw.socks5_connect(("127.0.0.1", g.port("secure")), "127.0.0.1", server.port, user="alice",
                                  password=WRONG_PASSWORD)
            s.close()
            raise gw.TestFailure("raw SOCKS5 with a wrong password succeeded")
        except gw.SocksError as e:
            check(e.code == ("auth", 1), "raw SOCKS5 with a wrong password: %s, expected auth status 1" % e)

        before = len(g.stdout_lines())
        r = gw.curl(["--socks5", secure, "-o", out, server.url()])
        check(r.returncode != 0, "curl without credentials on an auth: password listener succeeded")
        check(not os.path.exists(out) or os.path.getsize(out) == 0, "curl without credentials got data")

        check(g.alive(), "edgerelay died")
        g.stop_ok()

        # 5. every line: valid JSON with exactly the section 7 fields.
        recs = g.access_records()
        check(len(recs) >= 7, "expected at least 7 access-log lines, got %d" % len(recs))
        for rec in recs:
            gw.check_access_record(rec)

        # 6. passwords never appear anywhere in the output.
        for pw in (PASSWORD, WRONG_PASSWORD):
            check(pw not in g.stdout_text(), "a password appears on stdout")
            check(pw not in g.stderr_text(), "a password appears on stderr")


if __name__ == "__main__":
    gw.main(test)
