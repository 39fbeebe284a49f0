#!/usr/bin/env python3
"""The container image (deploy/Containerfile), as an operator builds it here: deploy/container/
stage.sh prepares the context from the built binary, `podman build --network=none` (Debian podman,
vfs storage in a private --root/--runroot under a temporary directory) builds it FROM scratch, and
the image's own root filesystem (`podman create` + `podman export`, never run) holds exactly the
binary, the libraries ldd lists, the CA bundle, passwd/group with the non-root user and the
config. `chroot ROOTFS /edgerelay check --config /etc/edgerelay/edgerelay.yaml`, as the image's
user, proves it self-contained. The image's config says USER 65532 (numeric, non-root),
STOPSIGNAL SIGTERM and ENTRYPOINT /edgerelay. Containers are never started: they do not run on
these machines.

usage: test_container.py SOURCE_DIR EDGERELAY_BINARY"""

import json
import os
import re
import shutil
import sys
import tarfile
import tempfile

from package_check import check, finish, run
IMAGE = "localhost/edgerelay:test"




def must(cmd, what, timeout=300):
    r = run(cmd, timeout=timeout)
    if r.returncode != 0:
        sys.exit("test_container: %s failed (exit %d): %s\n%s" % (what, r.returncode, " ".join(cmd), r.stdout))
    return r.stdout


def ldd_paths(binary):
    paths = set()
    for line in run(["ldd", binary]).stdout.splitlines():
        m = re.match(r"\s*\S+ => (/\S+)", line) or re.match(r"\s*(/\S+) \(", line)
        if m:
            paths.add(m.group(1))
    return paths


def files_in(root):
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.add("/" + os.path.relpath(os.path.join(dirpath, name), root))
    return found


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source_dir, binary = sys.argv[1:]
    if shutil.which("podman") is None:
        sys.exit("test_container: podman is missing (scripts/install-deps.sh test installs it)")
    config = os.path.join(source_dir, "deploy", "edgerelay.example.yaml")
    with tempfile.TemporaryDirectory(prefix="edgerelay-image-") as tmp:
        context = os.path.join(tmp, "context")
        print(must([os.path.join(source_dir, "deploy", "container", "stage.sh"), binary, config, context],
                   "stage.sh").strip(), flush=True)
        with open(os.path.join(context, "VERSION")) as f:
            version = f.read().strip()

        podman = ["podman", "--root", os.path.join(tmp, "storage"), "--runroot", os.path.join(tmp, "run"),
                  "--tmpdir", os.path.join(tmp, "podman-tmp"), "--storage-driver", "vfs",
                  "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        try:
            must(podman + ["build", "--network=none", "--build-arg", "VERSION=" + version,
                           "-f", os.path.join(source_dir, "deploy", "Containerfile"), "-t", IMAGE, context],
                 "podman build", timeout=600)
            info = json.loads(must(podman + ["image", "inspect", IMAGE], "podman image inspect"))[0]
            cfg = info.get("Config", {})
            user = cfg.get("User", "")
            check(re.fullmatch(r"[1-9]\d*(:\d+)?", user) is not None,
                  "image USER is %r: a numeric non-root uid lets runAsNonRoot verify it" % user)
            check(cfg.get("StopSignal") == "SIGTERM", "image STOPSIGNAL is %r" % cfg.get("StopSignal"))
            check(cfg.get("Entrypoint") == ["/edgerelay"], "image ENTRYPOINT is %r" % cfg.get("Entrypoint"))
            check(cfg.get("Cmd") == ["--config", "/etc/edgerelay/edgerelay.yaml"], "image CMD is %r" % cfg.get("Cmd"))
            check(info.get("Labels", {}).get("org.opencontainers.image.version") == version,
                  "image version label is not %s" % version)
            check(len(info.get("RootFS", {}).get("Layers", [])) == 1, "FROM scratch with one COPY is one layer")

            # The image's own filesystem, from a created (never started) container.
            must(podman + ["create", "--name", "edgerelay-export", IMAGE], "podman create")
            archive = os.path.join(tmp, "rootfs.tar")
            must(podman + ["export", "-o", archive, "edgerelay-export"], "podman export")
            rootfs = os.path.join(tmp, "rootfs")
            with tarfile.open(archive) as tar:
                tar.extractall(rootfs)
        finally:
            run(podman + ["rm", "--force", "edgerelay-export"])
            run(podman + ["rmi", "--force", IMAGE])
            run(podman + ["system", "reset", "--force"])

        fixed = {"/edgerelay", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                 "/etc/ssl/certs/ca-certificates.crt", "/usr/lib/ssl/cert.pem", "/usr/lib/ssl/certs",
                 "/etc/edgerelay/edgerelay.yaml"}
        wanted = fixed | ldd_paths(binary)
        have = files_in(rootfs)
        check(wanted <= have, "the image lacks %s" % sorted(wanted - have))
        # podman adds the mount points a container runtime needs; anything else is a leak.
        extra = {p for p in have - wanted if p not in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run/.containerenv")}
        check(not extra, "the image holds files no one asked for: %s" % sorted(extra))
        cert_target = os.readlink(os.path.join(rootfs, "usr/lib/ssl/cert.pem"))
        check(os.path.isfile(rootfs + cert_target), "OpenSSL's default cert.pem points at %s, not in the image" % cert_target)
        with open(os.path.join(rootfs, "etc/passwd")) as f:
            passwd = f.read()
        uid = user.split(":")[0]
        check(re.search(r"^edgerelay:x:%s:" % uid, passwd, re.M) is not None,
              "/etc/passwd has no edgerelay user with the image's uid %s:\n%s" % (uid, passwd))

        # Self-contained: the image's files alone run the binary, as the image's user.
        userspec = user if ":" in user else user + ":" + user
        r = run(["chroot", "--userspec=" + userspec, rootfs, "/edgerelay", "check", "--config",
                 "/etc/edgerelay/edgerelay.yaml"])
        check(r.returncode == 0 and r.stdout.rstrip().endswith("OK"),
              "chroot %s /edgerelay check failed (exit %d):\n%s" % (rootfs, r.returncode, r.stdout))
        r = run(["chroot", "--userspec=" + userspec, rootfs, "/edgerelay", "--version"])
        check(r.returncode == 0 and r.stdout.split()[:2] == ["edgerelay", version],
              "chroot /edgerelay --version: %r" % r.stdout)
        # A config the image cannot satisfy is refused by name, not by a missing library.
        with open(os.path.join(rootfs, "etc/edgerelay/bad.yaml"), "w") as f:
            f.write("listeners:\n  - {name: t, bind: \"127.0.0.1:0\", protocols: [socks5], tls: {cert: /nope.pem, key: /nope.key}}\n")
        r = run(["chroot", "--userspec=" + userspec, rootfs, "/edgerelay", "check", "--config", "/etc/edgerelay/bad.yaml"])
        check(r.returncode == 1 and "/nope.pem" in r.stdout, "check of a config naming a missing file: exit %d\n%s" % (r.returncode, r.stdout))
    finish("test_container")


if __name__ == "__main__":
    main()
