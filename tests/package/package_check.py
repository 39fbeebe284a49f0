"""What the packaging tests share: failures are collected (each printed as it happens), so one run
reports every broken property of a package, not only the first."""

import subprocess
import sys

FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def run(cmd, timeout=300, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kw)


def finish(test):
    """Prints the verdict and exits 1 when any check failed."""
    print("%s: %s" % (test, "%d failure(s)" % len(FAILURES) if FAILURES else "ok"))
    sys.exit(1 if FAILURES else 0)
