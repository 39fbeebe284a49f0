#!/usr/bin/env python3
"""FTP through edgerelay with the programs people use, the FTP client behind a real firewall (its
user may reach only the gateway's port; a direct connection to the server is shown to fail):

  active-socksify  Dante's socksify wrapping lftp in active mode (PORT): SOCKS5 CONNECT for the
                   control connection, SOCKS5 BIND for each data connection
  active-ftplib    Python's ftplib in active mode over this test's own SOCKS5 BIND client
  passive-curl     curl ftp:// with --socks5-hostname (EPSV/PASV data connections are CONNECTs):
                   a rule set without the server's passive range fails, one with it passes
  passive-lftp     lftp under proxychains4 in passive mode, the same two rule sets

Each downloads and uploads a file and compares checksums; the access log shows the sessions.
Usage: test_ftp.py EDGERELAY CASE
"""

import os
import subprocess
import sys

import ftp_support as ftp
import gateway as gw
from gateway import check

DOWNLOAD_SIZE = 3 * 1024 * 1024 + 17
UPLOAD_SIZE = 2 * 1024 * 1024 + 5
PASSIVE = (30000, 30009)


def gateway_config(rules, socks5_bind):
    extra = ", socks5_bind: true" if socks5_bind else ""
    return gw.config_yaml(listener_extra=extra, rules=rules, protocols="[socks5]",
                          limits={"bind_timeout": "20s", "connect_timeout": "5s"})


def rule(name, to):
    return '{name: %s, action: allow, from: ["127.0.0.0/8"], to: [%s]}' % (name, ", ".join('"%s"' % t for t in to))


class Setup:
    """The FTP server's files, the client's folder, the server, and (after start) the firewall."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.root = os.path.join(workdir, "ftproot")
        os.makedirs(self.root)
        self.download = ftp.make_file(os.path.join(self.root, "download.bin"), DOWNLOAD_SIZE, 1)
        self.client = ftp.client_dir(workdir)
        self.upload_src = os.path.join(self.client, "upload-src.bin")
        self.upload = ftp.make_file(self.upload_src, UPLOAD_SIZE, 2)
        self.server = ftp.FtpServer(self.root, PASSIVE)

    def close(self):
        self.server.close()

    def check_files(self, what, downloaded, uploaded_name):
        got = os.path.join(self.client, downloaded)
        check(os.path.exists(got), "%s: nothing downloaded to %s" % (what, got))
        check(ftp.sha256_of(got) == gw.sha256_file(os.path.join(self.root, "download.bin")),
              "%s: the download's sha256 differs (%d bytes of %d)" % (what, os.path.getsize(got), DOWNLOAD_SIZE))
        up = os.path.join(self.root, uploaded_name)
        check(os.path.exists(up), "%s: the server got no %s" % (what, uploaded_name))
        check(ftp.sha256_of(up) == gw.sha256_file(self.upload_src),
              "%s: the upload's sha256 differs (%d bytes of %d)" % (what, os.path.getsize(up), UPLOAD_SIZE))
        gw.log("%s: download and upload intact (sha256)" % what)


def start_firewalled(binary, workdir, setup, rules, socks5_bind):
    g = gw.Gateway(binary, gateway_config(rules, socks5_bind), workdir)
    g.start()
    ftp.firewall_client(g.port())
    ftp.check_direct_blocked(setup.server.port)
    return g


def bind_records(g):
    return [r for r in g.access_records() if r.get("command") == "bind"]


def check_active_log(g, what, transfers):
    """Every data connection was a BIND from the FTP server, logged as such."""
    binds = gw.wait_until(lambda: len(bind_records(g)) >= transfers and bind_records(g), 10)
    check(binds and len(binds) >= transfers, "%s: %d BIND access lines, expected %d:\n%s"
          % (what, len(binds or []), transfers, g.stdout_text()))
    for r in binds:
        gw.check_access_record(r)
        check(r["protocol"] == "socks5" and r["result"] == "ok", "%s: BIND line %r" % (what, r))
        check(r["dialled"].startswith(ftp.FTP_HOST + ":"), "%s: BIND peer %r is not the FTP server" % (what, r))
        check(r["rule"] == "ftp-server", "%s: BIND rule %r" % (what, r))
    down = max(r["bytes_down"] for r in binds)
    up = max(r["bytes_up"] for r in binds)
    check(down >= DOWNLOAD_SIZE and up >= UPLOAD_SIZE, "%s: BIND byte counts %d down, %d up" % (what, down, up))
    gw.log("%s: %d BIND sessions logged, e.g. %r" % (what, len(binds), binds[0]))


# -- active mode --------------------------------------------------------------------------------

def dante_conf(path, gateway_port):
    # No `method:` line: with Debian 12's dante-client 1.4.2, `method: none` (or `socksmethod:
    # none`) in a route makes every socksified program exit with status 1 at start-up, silently.
    with open(path, "w") as f:
        f.write("route {\n  from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = %d\n"
                "  proxyprotocol: socks_v5\n}\n" % gateway_port)
    os.chmod(path, 0o644)


def lftp_script(setup, passive):
    return ("set ftp:passive-mode %s; set net:max-retries 1; set net:timeout 15; set xfer:clobber on; "
            "set ftp:prefer-epsv no; set ftp:ssl-allow no; "
            "get download.bin -o %s; put %s -o uploaded.bin; cls -l; bye"
            % ("on" if passive else "off", os.path.join(setup.client, "downloaded.bin"), setup.upload_src))


def lftp_cmd(setup, passive):
    return ["lftp", "-u", "%s,%s" % (ftp.FTP_USER, ftp.FTP_PASSWORD), "-e", lftp_script(setup, passive),
            "ftp://%s:%d" % (ftp.FTP_HOST, setup.server.port)]


def client_env(setup):
    return {"HOME": setup.client}


def case_active_socksify(binary, workdir):
    setup = Setup(workdir)
    g = None
    try:
        g = start_firewalled(binary, workdir, setup, [rule("ftp-server", [ftp.FTP_HOST])], socks5_bind=True)
        conf = os.path.join(setup.client, "dante.conf")
        dante_conf(conf, g.port())
        env = client_env(setup)
        env.update({"SOCKS_CONF": conf, "SOCKS_AUTOADD_LANROUTES": "no"})
        # Without the gateway, the same lftp cannot get out of the firewall.
        blocked = ftp.run_as_client(["lftp", "-e", "set net:max-retries 1; set net:timeout 3; ls; bye",
                                     "ftp://%s:%d" % (ftp.FTP_HOST, setup.server.port)], env=client_env(setup))
        check(blocked.returncode != 0, "lftp reached the FTP server without the gateway: %s" % blocked.stdout)
        r = ftp.run_as_client(["socksify"] + lftp_cmd(setup, passive=False), env=env, timeout=90)
        gw.log("socksify lftp:", r.returncode, r.stdout.strip()[-400:], r.stderr.strip()[-400:])
        check(r.returncode == 0, "socksify lftp exited %d: %s %s" % (r.returncode, r.stdout, r.stderr))
        setup.check_files("socksify lftp (active)", "downloaded.bin", "uploaded.bin")
        check_active_log(g, "socksify lftp", 2)
        g.stop_ok()
    except BaseException:
        if g is not None:
            g.dump()
        raise
    finally:
        if g is not None:
            g.kill()
        setup.close()


def case_active_ftplib(binary, workdir):
    setup = Setup(workdir)
    g = None
    try:
        g = start_firewalled(binary, workdir, setup, [rule("ftp-server", [ftp.FTP_HOST])], socks5_bind=True)
        here = os.path.dirname(os.path.abspath(__file__))
        out = os.path.join(setup.client, "ftplib-downloaded.bin")
        r = ftp.run_as_client([ftp.SYSTEM_PYTHON, os.path.join(here, "ftp_support.py"), "ftplib-client",
                               str(g.port()), str(setup.server.port), "download.bin", out, setup.upload_src,
                               "ftplib-uploaded.bin"], env={"PYTHONPATH": here, "PYTHONDONTWRITEBYTECODE": "1"},
                              timeout=90)
        gw.log("ftplib:", r.returncode, r.stdout.strip()[-400:], r.stderr.strip()[-800:])
        check(r.returncode == 0, "ftplib over SOCKS5 BIND exited %d: %s %s" % (r.returncode, r.stdout, r.stderr))
        setup.check_files("ftplib (active, BIND)", "ftplib-downloaded.bin", "ftplib-uploaded.bin")
        check_active_log(g, "ftplib", 3)  # RETR, STOR, LIST
        g.stop_ok()
    except BaseException:
        if g is not None:
            g.dump()
        raise
    finally:
        if g is not None:
            g.kill()
        setup.close()


# -- passive mode -------------------------------------------------------------------------------

def passive_rules(setup, with_range):
    to = ["%s:%d" % (ftp.FTP_HOST, setup.server.port)]
    if with_range:
        to.append("%s:%d-%d" % (ftp.FTP_HOST, PASSIVE[0], PASSIVE[1]))
    return [rule("ftp-server", to)]


def denied_data_connections(g):
    out = []
    for r in g.access_records():
        port = int(r["target"].rsplit(":", 1)[1]) if ":" in r["target"] else -1
        if r["result"] == "denied" and PASSIVE[0] <= port <= PASSIVE[1]:
            out.append(r)
    return out


def passive_case(binary, workdir, what, run_client, downloaded, uploaded):
    setup = Setup(workdir)
    g = None
    try:
        # 1. Only the control port allowed: the data connection to the passive port is denied.
        g = start_firewalled(binary, workdir, setup, passive_rules(setup, with_range=False), socks5_bind=False)
        r = run_client(setup, g, "without-range")
        check(r.returncode != 0, "%s succeeded although the rules deny the passive ports: %s" % (what, r.stdout))
        denied = gw.wait_until(lambda: denied_data_connections(g), 10)
        check(denied, "%s: no denied data connection in the access log:\n%s" % (what, g.stdout_text()))
        gw.log("%s without the passive range: exit %d, denied %r" % (what, r.returncode, denied[0]))
        check(not os.path.exists(os.path.join(setup.root, uploaded)), "%s: an upload got through" % what)
        # 2. The rule the operator writes: the control port and the passive range.
        g.write_config(gateway_config(passive_rules(setup, with_range=True), socks5_bind=False))
        g.signal(1)  # SIGHUP
        g.wait_stderr(r"reload: ok: generation 2\b", timeout=10)
        r = run_client(setup, g, "with-range")
        gw.log("%s with the passive range: exit %d %s %s" % (what, r.returncode, r.stdout.strip()[-300:],
                                                            r.stderr.strip()[-300:]))
        check(r.returncode == 0, "%s exited %d with the passive range allowed: %s %s"
              % (what, r.returncode, r.stdout, r.stderr))
        setup.check_files(what + " (passive)", downloaded, uploaded)
        ok = [x for x in g.access_records() if x["result"] == "ok" and x["rule"] == "ftp-server"]
        data = [x for x in ok if PASSIVE[0] <= int(x["dialled"].rsplit(":", 1)[1]) <= PASSIVE[1]]
        check(len(data) >= 2, "%s: %d data connections through the gateway, expected 2 or more" % (what, len(data)))
        g.stop_ok()
    except BaseException:
        if g is not None:
            g.dump()
        raise
    finally:
        if g is not None:
            g.kill()
        setup.close()


def run_curl(setup, g, label):
    base = "ftp://%s:%s@%s:%d/" % (ftp.FTP_USER, ftp.FTP_PASSWORD, ftp.FTP_HOST, setup.server.port)
    proxy = ["--socks5-hostname", "127.0.0.1:%d" % g.port()]
    common = ["curl", "-sS", "--max-time", "30", "--connect-timeout", "10"] + proxy
    down = ftp.run_as_client(common + ["-o", os.path.join(setup.client, "curl-downloaded.bin"),
                                       base + "download.bin"], env=client_env(setup))
    if down.returncode != 0:
        return down
    return ftp.run_as_client(common + ["-T", setup.upload_src, base + "curl-uploaded.bin"], env=client_env(setup))


def run_lftp_proxychains(setup, g, label):
    conf = os.path.join(setup.client, "proxychains-%s.conf" % label)
    with open(conf, "w") as f:
        f.write("strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n"
                "[ProxyList]\nsocks5 127.0.0.1 %d\n" % g.port())
    os.chmod(conf, 0o644)
    script = lftp_script(setup, passive=True).replace("downloaded.bin", "lftp-downloaded.bin")
    script = script.replace("-o uploaded.bin", "-o lftp-uploaded.bin")
    cmd = ["proxychains4", "-f", conf, "lftp", "-u", "%s,%s" % (ftp.FTP_USER, ftp.FTP_PASSWORD), "-e", script,
           "ftp://%s:%d" % (ftp.FTP_HOST, setup.server.port)]
    return ftp.run_as_client(cmd, env=client_env(setup), timeout=90)


CASES = {
    "active-socksify": case_active_socksify,
    "active-ftplib": case_active_ftplib,
    "passive-curl": lambda b, w: passive_case(b, w, "curl --socks5-hostname", run_curl, "curl-downloaded.bin",
                                              "curl-uploaded.bin"),
    "passive-lftp": lambda b, w: passive_case(b, w, "proxychains4 lftp", run_lftp_proxychains,
                                              "lftp-downloaded.bin", "lftp-uploaded.bin"),
}


def test(binary, workdir):
    ftp.require_private_netns()
    CASES[CASE](binary, workdir)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.exit("usage: %s EDGERELAY {%s}" % (sys.argv[0], ",".join(CASES)))
    CASE = sys.argv.pop(2)
    gw.main(test)
