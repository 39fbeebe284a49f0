#!/usr/bin/env python3
"""The admin listener through the real binary (docs/config.md, admin; docs/metrics.md).

A. Sessions then /metrics: two SOCKS5 tunnels and one HTTP CONNECT tunnel to an echo server, one
   SOCKS5 request a rule denies; the counters say exactly that (results, bytes, rule decisions),
   `promtool check metrics` accepts the text; /status shows a live tunnel on its listener;
   /healthz and /readyz answer 200, an unknown path 404, a POST 405; after SIGTERM, while a tunnel
   drains, /readyz answers 503 and /healthz still 200, and the process exits 0 once it closes.
B. allow [127.0.0.2/32]: a connection from 127.0.0.1 is closed unanswered, one from 127.0.0.2 served;
   a failed reload shows in /status, a good one allowing 127.0.0.1 applies, both counted.
C. users [ops]: no credentials or wrong ones get 401, the right ones 200.
D. A real Prometheus server scrapes the admin listener every second; its query API returns
   edgerelay_sessions_total with the count of sessions that ran."""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

import gateway as gw
from gateway import check

ADMIN_RE = r" admin: listening on 127\.0\.0\.1:(\d+)"
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def admin_port(g):
    line = g.wait_stderr(ADMIN_RE, timeout=5)
    check(line is not None, "no 'admin: listening on' line:\n" + g.stderr_text())
    return int(re.search(ADMIN_RE, line).group(1))


def request(port, path, method="GET", headers=None, source="127.0.0.1", timeout=5):
    """(status, headers dict, body bytes) of one admin request."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        check(m is not None, "not a sample line: %r" % line)
        labels = frozenset(LABEL_RE.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def echo_roundtrip(sock, payload, what):
    sock.settimeout(5)
    sock.sendall(payload)
    got = gw.recv_exact(sock, len(payload))
    check(got == payload, "%s: echo returned %r" % (what, got))


def http_connect(port, host, target_port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), target_port, host.encode(),
                                                                   target_port))
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 4096:
        chunk = s.recv(1)
        check(chunk, "CONNECT: the gateway closed before its reply: %r" % head)
        head += chunk
    check(head.startswith(b"HTTP/1.1 200"), "CONNECT reply %r" % head)
    return s


def config(extra_admin="", users="", grace="10s"):
    rules = ['{name: no-discard, action: deny, to: ["127.0.0.1/32:9"]}',
             '{name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}']
    text = gw.config_yaml(rules=rules, users=users, protocols="[socks5, http]",
                          limits={"shutdown_grace": grace})
    return text + 'admin: {bind: "127.0.0.1:0"%s}\n' % extra_admin


def run_sessions(g, echo):
    """Two SOCKS5 tunnels and a CONNECT tunnel to the echo server, and one denied request: the
    bytes each tunnel moved up (and echoed down)."""
    sent = 0
    for i in range(2):
        with gw.socks5_connect(("127.0.0.1", g.port()), "127.0.0.1", echo.port) as s:
            payload = b"socks tunnel %d" % i
            echo_roundtrip(s, payload, "socks5 %d" % i)
            sent += len(payload)
    with http_connect(g.port(), "127.0.0.1", echo.port) as s:
        payload = b"connect tunnel payload"
        echo_roundtrip(s, payload, "CONNECT")
        sent += len(payload)
    try:
        gw.socks5_connect(("127.0.0.1", g.port()), "127.0.0.1", 9).close()
        raise gw.TestFailure("a request to port 9 was not denied")
    except gw.SocksError as e:
        gw.log("denied as expected:", e)
    g.wait_access_records(4)
    return sent


def promtool_check(text):
    promtool = shutil.which("promtool")
    check(promtool is not None, "promtool is missing (Debian package prometheus: scripts/install-deps.sh test)")
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "promtool check metrics failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr))


def case_metrics_and_drain(binary, workdir, echo):
    g = gw.Gateway(binary, config(), workdir, name="metrics.yaml")
    with gw.running(g):
        g.start()
        port = admin_port(g)
        status, _, body = request(port, "/healthz")
        check(status == 200 and body == b"ok\n", "/healthz: %r %r" % (status, body))
        status, _, _ = request(port, "/readyz")
        check(status == 200, "/readyz before any signal: %r" % status)
        check(request(port, "/nothing-here")[0] == 404, "an unknown path did not get 404")
        check(request(port, "/metrics", method="POST")[0] == 405, "POST /metrics did not get 405")

        sent = run_sessions(g, echo)
        status, headers, body = request(port, "/metrics")
        check(status == 200, "/metrics: %r" % status)
        check(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
              "/metrics Content-Type %r" % headers.get("Content-Type"))
        text = body.decode()
        promtool_check(text)
        m = parse_metrics(text)
        total = "edgerelay_sessions_total"
        check(value(m, total, listener="test", protocol="socks5", result="ok") == 2,
              "socks5 ok sessions: %r\n%s" % (value(m, total, listener="test", protocol="socks5", result="ok"), text))
        check(value(m, total, listener="test", protocol="http", result="ok") == 1,
              "CONNECT ok sessions: %r\n%s" % (value(m, total, listener="test", protocol="http", result="ok"), text))
        check(value(m, total, listener="test", protocol="socks5", result="denied") == 1,
              "denied sessions: %r" % value(m, total, listener="test", protocol="socks5", result="denied"))
        check(sum(v for (n, _), v in m.items() if n == total) == 4, "more sessions counted than ran:\n" + text)
        check(value(m, "edgerelay_bytes_total", listener="test", direction="up") == sent,
              "bytes up %r, sent %d" % (value(m, "edgerelay_bytes_total", listener="test", direction="up"), sent))
        check(value(m, "edgerelay_bytes_total", listener="test", direction="down") == sent, "bytes down differ")
        check(value(m, "edgerelay_rule_decisions_total", rule="no-discard", action="deny") == 1, "deny decision")
        check(value(m, "edgerelay_rule_decisions_total", rule="loopback", action="allow") == 3, "allow decisions")
        check(value(m, "edgerelay_sessions_active") == 0, "sessions_active after all closed")
        check(value(m, "edgerelay_session_duration_seconds_count") == 4, "duration histogram count")
        check(value(m, "edgerelay_config_generation") == 1, "config generation")
        check(value(m, "process_open_fds") is not None and value(m, "process_open_fds") > 3, "process_open_fds")
        check(value(m, "process_resident_memory_bytes") > 1e6, "process_resident_memory_bytes")
        check("127.0.0.1:" not in text, "a client address in the metrics:\n" + text)

        tunnel = gw.socks5_connect(("127.0.0.1", g.port()), "127.0.0.1", echo.port)
        with tunnel:
            echo_roundtrip(tunnel, b"draining", "open tunnel")
            status, headers, body = request(port, "/status")
            check(status == 200 and headers.get("Content-Type") == "application/json", "/status: %r" % status)
            st = json.loads(body)
            check(st["generation"] == 1 and st["ready"] is True, "/status: %r" % st)
            check(st["listeners"] == [{"name": "test", "bind": "127.0.0.1:%d" % g.port(), "sessions": 1}],
                  "/status listeners: %r" % st["listeners"])
            check(st["sessions_active"] == 1, "/status sessions_active: %r" % st)
            check(st["last_reload"]["result"] == "none", "/status last_reload: %r" % st)

            t0 = time.monotonic()
            g.signal(signal.SIGTERM)
            not_ready = gw.wait_until(lambda: request(port, "/readyz")[0] == 503, 1.0)
            check(not_ready, "/readyz still 200 1 s after SIGTERM")
            gw.log("/readyz 503 %.3f s after SIGTERM" % (time.monotonic() - t0))
            check(request(port, "/healthz")[0] == 200, "/healthz not 200 while draining")
            st = json.loads(request(port, "/status")[2])
            check(st["ready"] is False and st["sessions_active"] == 1, "/status while draining: %r" % st)
            echo_roundtrip(tunnel, b"still draining", "tunnel after SIGTERM")
        status = g.wait_exit(5)
        check(status == 0, "exit status %r after the drained tunnel closed" % status)


def case_not_allowed(binary, workdir):
    g = gw.Gateway(binary, config(extra_admin=", allow: [127.0.0.2/32]"), workdir, name="allow.yaml")
    with gw.running(g):
        g.start()
        port = admin_port(g)
        s = socket.socket()
        s.settimeout(5)
        s.bind(("127.0.0.1", 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
        finally:
            s.close()
        check(got == b"", "a source outside admin allow got an answer: %r" % got)
        status, _, body = request(port, "/metrics", source="127.0.0.2")
        check(status == 200 and b"edgerelay_sessions_active" in body, "allowed source 127.0.0.2: %r" % status)

        # A reload that fails is reported; one that succeeds applies the new allow list.
        g.write_config(config(extra_admin=", allow: [not-a-cidr]"))
        g.signal(signal.SIGHUP)
        failed = gw.wait_until(lambda: json.loads(request(port, "/status", source="127.0.0.2")[2])
                               ["last_reload"]["result"] == "failed", 5)
        check(failed, "/status does not report the failed reload")
        st = json.loads(request(port, "/status", source="127.0.0.2")[2])
        check("not-a-cidr" in st["last_reload"]["message"] and st["generation"] == 1, "failed reload: %r" % st)
        g.write_config(config(extra_admin=", allow: [127.0.0.1/32]"))
        g.signal(signal.SIGHUP)
        check(g.wait_stderr(r"reload: ok: generation 2", timeout=5), "the good reload did not apply")
        status, _, body = request(port, "/metrics")
        check(status == 200, "127.0.0.1 after the reload allowed it: %r" % status)
        m = parse_metrics(body.decode())
        check(value(m, "edgerelay_config_reloads_total", result="failed") == 1
              and value(m, "edgerelay_config_reloads_total", result="ok") == 1
              and value(m, "edgerelay_config_generation") == 2, "reload counters:\n" + body.decode())
        g.stop_ok()


def case_basic_auth(binary, workdir):
    h = gw.make_password_hash(binary, "s3cret-admin")
    users = '  - {name: ops, password: "%s"}\n' % h
    g = gw.Gateway(binary, config(extra_admin=", users: [ops]", users=users), workdir, name="auth.yaml")
    with gw.running(g):
        g.start()
        port = admin_port(g)
        status, headers, _ = request(port, "/status")
        check(status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), "no credentials: %r" % status)
        for user, password in (("ops", "wrong"), ("root", "s3cret-admin")):
            token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            status = request(port, "/status", headers={"Authorization": "Basic " + token})[0]
            check(status == 401, "%s/%s got %r" % (user, password, status))
        token = base64.b64encode(b"ops:s3cret-admin").decode()
        status, _, body = request(port, "/status", headers={"Authorization": "Basic " + token})
        check(status == 200 and json.loads(body)["generation"] == 1, "right credentials: %r" % status)
        g.stop_ok()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_prometheus_scrape(binary, workdir, echo):
    prometheus = shutil.which("prometheus")
    check(prometheus is not None, "prometheus is missing (Debian package prometheus: scripts/install-deps.sh test)")
    g = gw.Gateway(binary, config(), workdir, name="scrape.yaml")
    prom = None
    with gw.running(g):
        g.start()
        port = admin_port(g)
        web = free_port()
        conf = os.path.join(workdir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n"
                    "  - job_name: edgerelay\n"
                    "    scrape_timeout: 1s\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % port)
        tsdb = os.path.join(workdir, "tsdb")
        prom = subprocess.Popen([prometheus, "--config.file=" + conf, "--storage.tsdb.path=" + tsdb,
                                 "--web.listen-address=127.0.0.1:%d" % web, "--log.level=warn"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=gw.clean_env(), preexec_fn=gw.die_with_parent)
        try:
            def ready():
                try:
                    return request(web, "/-/ready", timeout=1)[0] == 200
                except OSError:
                    return False
            check(gw.wait_until(ready, 20, interval=0.2), "prometheus did not become ready within 20 s")
            run_sessions(g, echo)
            query = "/api/v1/query?query=" + urllib.parse.quote("sum(edgerelay_sessions_total)")

            def scraped_total():
                status, _, body = request(web, query, timeout=2)
                if status != 200:
                    return None
                result = json.loads(body)["data"]["result"]
                return float(result[0]["value"][1]) if result else None
            total = gw.wait_until(lambda: scraped_total() == 4, 20, interval=0.5)
            check(total, "prometheus never saw sum(edgerelay_sessions_total) == 4 (last: %r)" % scraped_total())
            status, _, body = request(web, "/api/v1/query?query=" + urllib.parse.quote(
                'edgerelay_sessions_total{result="denied"}'), timeout=2)
            result = json.loads(body)["data"]["result"]
            check(len(result) == 1 and result[0]["metric"]["listener"] == "test" and result[0]["value"][1] == "1",
                  "prometheus denied series: %r" % result)
            status, _, body = request(web, "/api/v1/targets", timeout=2)
            targets = json.loads(body)["data"]["activeTargets"]
            check(targets and targets[0]["health"] == "up", "prometheus target: %r" % targets)
            gw.log("prometheus scraped", targets[0]["scrapeUrl"], "health", targets[0]["health"])
        finally:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(timeout=5)
        g.stop_ok()


def test(binary, workdir):
    echo = gw.EchoServer()
    try:
        case_metrics_and_drain(binary, workdir, echo)
        case_not_allowed(binary, workdir)
        case_basic_auth(binary, workdir)
        case_prometheus_scrape(binary, workdir, echo)
    finally:
        echo.close()


if __name__ == "__main__":
    gw.main(test)
