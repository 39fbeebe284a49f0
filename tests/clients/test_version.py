#!/usr/bin/env python3
"""`edgerelay --version` prints what a bug report needs, each from where it really comes from:
the CMake project VERSION, the git revision of the checkout it was configured from ("unknown"
outside git), the OpenSSL loaded at run time (the same library `openssl version` reports), the
Boost it was compiled against, and the build type.

usage: test_version.py EDGERELAY VERSION BUILD_TYPE BOOST_VERSION SOURCE_DIR
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway as gw  # noqa: E402
from gateway import check, log  # noqa: E402


def test(binary, workdir):
    version, build_type, boost, source = sys.argv[2:6]
    r = gw.run([binary, "--version"], timeout=10)
    check(r.returncode == 0, "--version exited %d: %s" % (r.returncode, r.stderr))
    log("--version:\n" + r.stdout)
    lines = r.stdout.splitlines()
    check(len(lines) == 5, "expected 5 lines, got %r" % lines)
    check(lines[0] == "edgerelay " + version, "first line %r, expected the project version %s" % (lines[0], version))

    git = shutil.which("git")
    expected_rev = "unknown"
    if git is not None:
        g = subprocess.run([git, "-C", source, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
        if g.returncode == 0:
            expected_rev = g.stdout.strip()
    check(lines[1] == "git revision: " + expected_rev,
          "%r, expected the checkout's revision %s" % (lines[1], expected_rev))

    m = re.fullmatch(r"OpenSSL: (OpenSSL \d+\.\d+\.\d+\S* .+)", lines[2])
    check(m is not None, "OpenSSL line %r" % lines[2])
    o = subprocess.run(["openssl", "version"], capture_output=True, text=True)
    check(o.returncode == 0, "openssl version failed")
    # "OpenSSL 3.0.x <date> (Library: OpenSSL 3.0.x <date>)": the library is what edgerelay loads too.
    lib = re.search(r"\(Library: (.+)\)", o.stdout)
    loaded = lib.group(1) if lib else o.stdout.strip()
    check(m.group(1) == loaded, "edgerelay reports %r, the system library is %r" % (m.group(1), loaded))

    boost_dotted = boost
    check(lines[3] == "Boost: " + boost_dotted, "%r, expected Boost %s" % (lines[3], boost_dotted))
    check(lines[4] == "build type: " + (build_type or "none"), "%r, expected %s" % (lines[4], build_type))


if __name__ == "__main__":
    gw.main(test)
