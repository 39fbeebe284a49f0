#!/usr/bin/env python3
"""edgerelay client through a corporate Squid that forwards plain HTTP only: CONNECT is denied and
no http_upgrade_request_protocols is set, so Squid strips Upgrade. The scene (users, iptables owner
rules, the target's services, the gateway) is test_client_squid.py's:

  application (uid nobody) --> edgerelay client (uid daemon) --> Squid :3130 (uid proxy) --> gateway :80

The client crosses with the HTTP-polling transport, configured (`transport: polling`) and found
by `auto` after the CONNECT and the WebSocket upgrade were refused. Through it: curl on the
client's SOCKS5 and HTTP (CONNECT) listeners and proxychains4, a forward door whose server speaks first,
8 MiB each way with SHA-256 and half-close, and 20 concurrent sessions. Squid's own access log
shows that the requests went through it.

Needs root (users, iptables) and squid, iptables, curl, proxychains4, openssl; it never skips.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway import Gateway, check, die_with_parent, log, make_password_hash  # noqa: E402
import test_client_squid as scene_of  # noqa: E402
from test_client_squid import (APP_USER, CLIENT_USER, GW_ADDR, MIB, SQUID_ADDR, SQUID_PLAIN_ONLY,  # noqa: E402
                               TARGET_ADDR, Scene, app_python, app_run, as_user, client_wrapper, firewall,
                               gateway_config, make_pki, need, running, start_squid)

SQUID_PORT = 3130
SIZE = 8 * MIB


def exercise_plain(scene, client, label):
    # The HTTP listener through CONNECT (curl -p): its plain-HTTP forwarding needs a stream upstream,
    # which message legs (WebSocket, polling) are not (as in test_client_squid.py's WebSocket runs).
    local_port = client.port("local")
    url = "http://%s:%d/hello.txt" % (TARGET_ADDR, scene.web_port)
    for proxy_arg in ("socks5h://127.0.0.1:%d" % local_port, "socks5://127.0.0.1:%d" % local_port,
                      "socks4://127.0.0.1:%d" % local_port):
        r = app_run(["curl", "-sS", "--max-time", "30", "-x", proxy_arg, url])
        check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
              "%s: curl -x %s: %d %s %s" % (label, proxy_arg, r.returncode, r.stdout, r.stderr))
    r = app_run(["curl", "-sS", "--max-time", "30", "-p", "-x", "http://127.0.0.1:%d" % local_port, url])
    check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
          "%s: curl -p (CONNECT to the client): %d %s" % (label, r.returncode, r.stderr))
    pc = os.path.join(scene.d, "proxychains-%d.conf" % local_port)
    with open(pc, "w") as f:
        f.write("strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 10000\n"
                "[ProxyList]\nsocks5 127.0.0.1 %d\n" % local_port)
    os.chmod(pc, 0o644)
    r = app_run(["proxychains4", "-f", pc, "curl", "-sS", "--max-time", "30", url])
    check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
          "%s: proxychains4 curl: %d %s %s" % (label, r.returncode, r.stdout, r.stderr))
    log(label + ": curl (socks5h, socks5, socks4, CONNECT to the HTTP listener) and proxychains4 crossed Squid")

    out = app_python("banner", client.port("sql"), len("602SQL server ready"))
    check(out.strip() == "602SQL server ready", "%s: forward door, server speaks first: %r" % (label, out))

    out = app_python("upload", local_port, TARGET_ADDR, scene.sinks.port, SIZE).split()
    check(len(out) == 2 and out[0] == out[1], "%s: %d bytes up then half-close: %s" % (label, SIZE, out))
    out = app_python("download", local_port, TARGET_ADDR, scene.sources.port, SIZE).split()
    block = hashlib.sha256(b"down").digest() * 2048
    want = hashlib.sha256(block * (SIZE // len(block))).hexdigest()
    check(out == [str(SIZE), want], "%s: %d bytes down: %s" % (label, SIZE, out))
    log("%s: %d MiB each way with half-close, SHA-256 equal" % (label, SIZE // MIB))

    out = app_python("many", local_port, TARGET_ADDR, scene.echoes.port, 20, timeout=120)
    check(out.strip() == "20", "%s: 20 concurrent sessions: %s echoed" % (label, out.strip()))
    log(label + ": 20 concurrent sessions")


def squid_lines(d):
    with open(os.path.join(d, "access.log")) as f:
        return f.read().splitlines()


def main():
    binary = os.path.abspath(sys.argv[1])
    need(os.geteuid() == 0, "needs root (iptables owner rules and three users)")
    need(os.environ.get("EDGERELAY_NETNS") == "1", "needs its own network namespace (tests/support/in_netns.sh)")
    for tool in ("squid", "iptables", "curl", "proxychains4", "openssl"):
        need(shutil.which(tool) is not None, "%s is not installed (scripts/install-deps.sh)" % tool)
    need(os.path.exists("/usr/lib/squid/basic_ncsa_auth"), "squid's basic_ncsa_auth is missing")

    d = tempfile.mkdtemp(prefix="edgerelay-client-plain-")
    os.chmod(d, 0o755)
    squid = None
    scene = None
    web = None
    try:
        make_pki(d)
        for name, text in (("alice.secret", "alicepw\n"), ("bob.secret", "bobpw\n")):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        scene = Scene(binary, d)
        files = tempfile.mkdtemp(dir=d)
        with open(os.path.join(files, "hello.txt"), "w") as f:
            f.write("hello through the corporate proxy\n")
        web = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", TARGET_ADDR, "--directory", files],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        line = web.stdout.readline().decode()
        scene.web_port = int(line.split("port ")[1].split(" ")[0])
        scene.gw_dir = os.path.join(d, "gw")
        os.mkdir(scene.gw_dir)
        for f in ("gw.pem", "gw.key"):
            shutil.copy(os.path.join(d, f), scene.gw_dir)
        scene.gw_text = gateway_config(make_password_hash(binary, "alicepw"), scene.banners.port)
        scene.gw = Gateway(binary, scene.gw_text, scene.gw_dir)
        scene.gw.start(listeners=("tls", "plain"))
        squid_dir = os.path.join(d, "squid-plain")
        squid = start_squid(squid_dir, SQUID_PORT, SQUID_PLAIN_ONLY)
        scene.wrapper = client_wrapper(d, binary)
        for p in os.listdir(d):
            full = os.path.join(d, p)
            if os.path.isfile(full):
                os.chmod(full, 0o755 if p == "edgerelay-client" else 0o644)

        # transport: polling, as configured for a proxy known to pass plain HTTP only.
        client = scene.client("polling.yaml", transport="polling", squid_port=SQUID_PORT, gw_port=80)
        with running(client):
            client.start(listeners=("local", "sql"))
            check("tunnel: polling, plain-HTTP proxy %s:%d forwarding to %s:80" % (SQUID_ADDR, SQUID_PORT, GW_ADDR)
                  in client.stderr_text(), "the client's tunnel:\n" + client.stderr_text())
            firewall(client)
            out = app_python("direct", TARGET_ADDR, scene.web_port)
            check(out.startswith("blocked"), "the application reached the target directly: %s" % out)
            r = subprocess.run(["curl", "-sS", "--max-time", "5", "http://%s:80/" % GW_ADDR],
                               capture_output=True, timeout=30, preexec_fn=as_user(CLIENT_USER))
            check(r.returncode != 0, "the client's user reached the gateway without the proxy")
            # The proxy really refuses what the other transports need.
            r = subprocess.run(["curl", "-sS", "--max-time", "5", "-p", "-x",
                                "http://bob:bobpw@%s:%d" % (SQUID_ADDR, SQUID_PORT), "http://%s:80/" % GW_ADDR],
                               capture_output=True, timeout=30, preexec_fn=as_user(CLIENT_USER))
            check(r.returncode != 0 and b"403" in r.stderr, "Squid allowed a CONNECT: %d %s" % (r.returncode, r.stderr))
            log("direct attempts are blocked; Squid refuses CONNECT")
            exercise_plain(scene, client, "polling through a plain-HTTP-only Squid")
            lines = squid_lines(squid_dir)
            polls = [x for x in lines if "/edgerelay/poll/" in x]
            check(len(polls) > 100 and all(" bob " in x for x in polls),
                  "Squid's log does not show the polling requests as bob: %d of %d lines" % (len(polls), len(lines)))
            check(not any("CONNECT" in x and "TCP_TUNNEL" in x for x in lines), "a CONNECT passed Squid")
            log("Squid forwarded %d polling requests" % len(polls))
        subprocess.run(["iptables", "-F", "OUTPUT"], check=True, timeout=30)

        # auto behind the same Squid: CONNECT refused, the upgrade stripped, polling works and is kept.
        client = scene.client("auto-plain.yaml", transport="auto", squid_port=SQUID_PORT, gw_port=80)
        with running(client):
            client.start(listeners=("local", "sql"))
            firewall(client)
            url = "http://%s:%d/hello.txt" % (TARGET_ADDR, scene.web_port)
            for _ in range(3):
                r = app_run(["curl", "-sS", "--max-time", "30", "-x", "socks5h://127.0.0.1:%d" % client.port("local"),
                             url])
                check(r.returncode == 0 and b"hello through the corporate proxy" in r.stdout,
                      "auto behind a plain-HTTP-only Squid: %d %s" % (r.returncode, r.stderr))
            text = client.stderr_text()
            check(text.count("failed at the connect hop") == 1 and text.count("failed at the upgrade hop") == 1
                  and "gateway reached by polling, plain-HTTP proxy" in text,
                  "auto did not try CONNECT, then the upgrade, then polling, once, and keep it:\n" + text)
            for hop in ("connect", "upgrade"):
                log("auto:", [x for x in text.splitlines() if "failed at the %s hop" % hop in x][0])
            log("auto: CONNECT refused, upgrade refused, polling worked and was kept")
            exercise_plain(scene, client, "auto (polling) through a plain-HTTP-only Squid")
    finally:
        subprocess.run(["iptables", "-F", "OUTPUT"], timeout=30)
        if web is not None:
            web.kill()
        if scene is not None:
            if scene.gw is not None:
                scene.gw.kill()
            for x in scene.services:
                x.close()
        if squid is not None:
            squid.terminate()
            try:
                squid.wait(10)
            except subprocess.TimeoutExpired:
                squid.kill()
        shutil.rmtree(d, ignore_errors=True)
    log("ok")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--app":
        sys.exit(scene_of.app_main(sys.argv[2], sys.argv[3:]))
    main()
