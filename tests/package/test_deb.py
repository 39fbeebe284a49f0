#!/usr/bin/env python3
"""The Debian package (cmake/packaging.cmake), built as an operator would: `cpack -G DEB` from the
build tree gives edgerelay_<version>_amd64.deb; lintian (Debian) reports no error; its control
fields declare every library the binary links (each package dpkg -S names for a NEEDED library)
and adduser; its contents hold the binary, the unit, the conffile, the docs and the copyright and
changelog; the unit names paths that the package installs and the static edgerelay user; the
packaged binary checks the packaged config; and the maintainer scripts, run in a private mount
namespace over a copy of /etc and of dpkg's database, create the system user and the 0750
/etc/edgerelay, are idempotent on upgrade, and undo the statoverride on purge.

usage: test_deb.py BUILD_DIR SOURCE_DIR EDGERELAY_BINARY"""

import glob
import os
import re
import shutil
import sys
import tempfile

from package_check import check, finish, run




def need(program):
    path = shutil.which(program)
    if path is None:
        sys.exit("test_deb: %s is missing (scripts/install-deps.sh test installs it)" % program)
    return path


def build_package(build_dir, out_dir):
    r = run(["cpack", "--config", os.path.join(build_dir, "CPackConfig.cmake"), "-G", "DEB",
             "-B", out_dir])
    if r.returncode != 0:
        sys.exit("test_deb: cpack failed:\n" + r.stdout)
    debs = glob.glob(os.path.join(out_dir, "*.deb"))
    if len(debs) != 1:
        sys.exit("test_deb: cpack made %r, expected one .deb:\n%s" % (debs, r.stdout))
    return debs[0]


def control_fields(deb):
    text = run(["dpkg-deb", "-f", deb]).stdout
    fields, key = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def depends_names(depends):
    names = set()
    for alternative in depends.split(","):
        for choice in alternative.split("|"):
            names.add(re.sub(r"\s*\(.*\)", "", choice).strip().split(":")[0])
    return names


def needed_packages(binary):
    """The Debian package of every shared library the binary names (ldd resolves them)."""
    packages = {}
    for line in run(["ldd", binary]).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if not m:
            continue
        real = os.path.realpath(m.group(2))
        owner = run(["dpkg", "-S", real])
        if owner.returncode != 0:
            # usrmerge: dpkg knows the /lib spelling of a file that lives in /usr/lib.
            owner = run(["dpkg", "-S", real.replace("/usr/lib/", "/lib/", 1)])
        check(owner.returncode == 0, "no package owns %s (for %s): %s" % (real, m.group(1), owner.stdout))
        if owner.returncode == 0:
            packages[m.group(1)] = owner.stdout.split(":")[0].strip()
    return packages


def check_contents(deb, source_dir):
    listing = run(["dpkg-deb", "-c", deb]).stdout
    entries = {}
    for line in listing.splitlines():
        parts = line.split(None, 5)
        entries[parts[5].split(" -> ")[0].lstrip(".")] = (parts[0], parts[1])
    doc = "/usr/share/doc/edgerelay/"
    wanted = ["/usr/bin/edgerelay", "/usr/lib/systemd/system/edgerelay.service",
              "/etc/edgerelay/edgerelay.yaml", doc + "copyright", doc + "changelog.gz",
              doc + "README.md", doc + "examples/edgerelay.example.yaml",
              "/usr/share/man/man1/edgerelay.1.gz"]
    wanted += [doc + os.path.basename(p) for p in glob.glob(os.path.join(source_dir, "docs", "*.md"))]
    for path in wanted:
        check(path in entries, "the package lacks %s" % path)
    for path, (mode, owner) in entries.items():
        check(owner == "root/root", "%s is owned by %s, not root/root" % (path, owner))
        check(not path.startswith("/usr/local"), "%s is under /usr/local" % path)
    if "/usr/bin/edgerelay" in entries:
        check(entries["/usr/bin/edgerelay"][0] == "-rwxr-xr-x",
              "/usr/bin/edgerelay has mode %s" % entries["/usr/bin/edgerelay"][0])
    return entries


def check_control(deb, tmp, binary, version):
    fields = control_fields(deb)
    check(os.path.basename(deb) == "edgerelay_%s_amd64.deb" % version,
          "package file %s, expected edgerelay_%s_amd64.deb" % (os.path.basename(deb), version))
    check(fields.get("Package") == "edgerelay", "Package: %r" % fields.get("Package"))
    check(fields.get("Version") == version, "Version: %r, the binary says %s" % (fields.get("Version"), version))
    check(fields.get("Architecture") == "amd64", "Architecture: %r" % fields.get("Architecture"))
    depends = depends_names(fields.get("Depends", ""))
    print("Depends: " + fields.get("Depends", ""), flush=True)
    for name in ("adduser", "libssl3", "libyaml-cpp0.7", "libstdc++6", "libc6"):
        check(name in depends, "Depends lacks %s: %s" % (name, fields.get("Depends")))
    for lib, package in needed_packages(binary).items():
        check(package in depends, "the binary links %s from %s, which Depends does not name" % (lib, package))

    control = os.path.join(tmp, "control")
    run(["dpkg-deb", "-e", deb, control])
    with open(os.path.join(control, "conffiles")) as f:
        conffiles = f.read().split()
    check(conffiles == ["/etc/edgerelay/edgerelay.yaml"], "conffiles: %r" % conffiles)
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(control, script)
        check(os.path.exists(path) and os.stat(path).st_mode & 0o777 == 0o755, "%s missing or not 0755" % script)
        r = run(["sh", "-n", path])
        check(r.returncode == 0, "%s: sh -n: %s" % (script, r.stdout))
    return control


def check_changelog(source_dir, version):
    with open(os.path.join(source_dir, "deploy", "debian", "changelog")) as f:
        first = f.readline()
    m = re.match(r"edgerelay \(([^)]+)\)", first)
    check(m is not None and m.group(1) == version,
          "deploy/debian/changelog's first entry is %r; the project version is %s (add an entry)" % (first.strip(), version))


def check_unit_and_config(deb, tmp):
    root = os.path.join(tmp, "root")
    run(["dpkg-deb", "-x", deb, root])
    with open(os.path.join(root, "usr/lib/systemd/system/edgerelay.service")) as f:
        unit = f.read()
    settings = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    for key in ("ExecStart", "ExecStartPre"):
        for command in settings.get(key, []):
            program = command.split()[0]
            check(os.path.exists(root + program), "%s=%s: the package has no %s" % (key, command, program))
            m = re.search(r"--config (\S+)", command)
            check(m is not None and os.path.exists(root + m.group(1)),
                  "%s=%s: the config it names is not in the package" % (key, command))
    check(settings.get("User") == ["edgerelay"], "User=%r, expected the static edgerelay user" % settings.get("User"))
    check(settings.get("Group") == ["edgerelay"], "Group=%r" % settings.get("Group"))
    check("DynamicUser" not in settings, "DynamicUser= cannot read key files of mode 0600")

    packaged = os.path.join(root, "usr/bin/edgerelay")
    r = run([packaged, "check", "--config", os.path.join(root, "etc/edgerelay/edgerelay.yaml")])
    check(r.returncode == 0 and r.stdout.rstrip().endswith("OK"), "the packaged binary refuses the packaged config:\n" + r.stdout)
    return packaged


def check_lintian(deb):
    r = run(["lintian", "--pedantic", "--info", "--display-experimental", "--fail-on", "error", deb], timeout=600)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    print("lintian: %d tag(s)" % len(tags), flush=True)
    for line in tags:
        print("  " + line, flush=True)
    errors = [line for line in tags if line.startswith("E: ")]
    check(not errors and r.returncode == 0, "lintian reports errors (exit %d):\n%s" % (r.returncode, "\n".join(errors) or r.stdout))


MAINTAINER_SCRIPTS = r"""
set -eu
mount --make-rprivate /
mount --bind "$TMP/etc" /etc
mkdir -p /etc/edgerelay
sh "$CONTROL/postinst" configure ""
getent passwd edgerelay
getent group edgerelay
stat -c 'dir %U:%G %a' /etc/edgerelay
sh "$CONTROL/postinst" configure 0.0.9
getent passwd | grep -c '^edgerelay:' | sed 's/^/users /'
sh "$CONTROL/prerm" remove
sh "$CONTROL/postrm" remove
dpkg-statoverride --list /etc/edgerelay | sed 's/^/override /'
sh "$CONTROL/postrm" purge
dpkg-statoverride --list /etc/edgerelay || echo "override gone"
"""


def check_maintainer_scripts(control, tmp):
    """postinst, prerm and postrm as dpkg runs them, over copies: the host's users and dpkg database
    are untouched."""
    shutil.copytree("/etc", os.path.join(tmp, "etc"), symlinks=True)
    admin = os.path.join(tmp, "dpkg")
    os.makedirs(os.path.join(admin, "updates"))
    shutil.copy("/var/lib/dpkg/statoverride", admin)
    env = dict(os.environ, TMP=tmp, CONTROL=control, DPKG_ADMINDIR=admin)
    r = run(["unshare", "-m", "sh", "-c", MAINTAINER_SCRIPTS], env=env)
    out = r.stdout
    check(r.returncode == 0, "maintainer scripts failed (exit %d):\n%s" % (r.returncode, out))
    m = re.search(r"^edgerelay:x:(\d+):(\d+):[^:]*:([^:]*):(\S*)$", out, re.M)
    check(m is not None, "postinst made no edgerelay user:\n" + out)
    if m:
        check(int(m.group(1)) < 1000, "edgerelay is uid %s, not a system user" % m.group(1))
        check(m.group(4) in ("/usr/sbin/nologin", "/bin/false"), "edgerelay's shell is %s" % m.group(4))
        check(m.group(3) == "/nonexistent", "edgerelay's home is %s" % m.group(3))
    check("dir root:edgerelay 750" in out, "/etc/edgerelay is not root:edgerelay 0750:\n" + out)
    check("users 1" in out, "a second configure (upgrade) did not keep one edgerelay user:\n" + out)
    check("override root edgerelay 750 /etc/edgerelay" in out, "no statoverride after remove:\n" + out)
    check("override gone" in out, "purge kept the statoverride:\n" + out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    build_dir, source_dir, binary = sys.argv[1:]
    for program in ("cpack", "dpkg-deb", "dpkg-shlibdeps", "lintian", "unshare", "ldd"):
        need(program)
    with open("/etc/passwd") as f:
        host_passwd = f.read()
    version = run([binary, "--version"]).stdout.split()[1]
    with tempfile.TemporaryDirectory(prefix="edgerelay-deb-") as tmp:
        deb = build_package(build_dir, os.path.join(tmp, "out"))
        print("built " + os.path.basename(deb), flush=True)
        check_changelog(source_dir, version)
        control = check_control(deb, tmp, binary, version)
        check_contents(deb, source_dir)
        packaged = check_unit_and_config(deb, tmp)
        check(run([packaged, "--version"]).stdout.split()[:2] == ["edgerelay", version],
              "the packaged binary's --version is not %s" % version)
        check_lintian(deb)
        check_maintainer_scripts(control, tmp)
    with open("/etc/passwd") as f:
        check(f.read() == host_passwd, "the host's /etc/passwd changed")
    finish("test_deb")


if __name__ == "__main__":
    main()
