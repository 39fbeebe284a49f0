#!/usr/bin/env python3
"""Large rule sets: for each size N, a config of N rules (gen_rules.py), then

- `edgerelay check --config FILE`: wall time and max RSS (the child's rusage);
- `edgerelay run --config FILE --workers 1`: time from exec until the listener accepts a TCP
  connection, and VmRSS/VmHWM then (the gateway is stopped with SIGTERM afterwards);
- `edgerelay-rules-bench FILE`: load and compile time, and decide() latency p50/p99/max for
  requests by address and by name only.

Prints a Markdown table and, with --out, one JSON line per size. With --max-* limits it exits 1
when a figure is over its limit (the smoke test uses loose ones), or when anything failed.
Everything is on 127.0.0.1 (127.0.0.2 for the second listener); every child has a time limit.

usage: run.py --edgerelay PATH --rules-bench PATH [--sizes 10000,100000] [--out FILE]
              [--max-check-s S] [--max-check-rss-mib M] [--max-start-s S] [--max-decide-p99-us U]
"""
import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_child(argv, timeout, tmp):
    """(exit code, wall seconds, max RSS KiB, stdout, stderr) of one child, its own rusage."""
    with open(os.path.join(tmp, "out"), "w+b") as out, open(os.path.join(tmp, "err"), "w+b") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{argv[0]} did not finish within {timeout} s")
            time.sleep(0.002)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, wall, usage.ru_maxrss, out.read(), err.read()


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def gateway_start(edgerelay, config, port, timeout, tmp):
    """Seconds until 127.0.0.1:port accepts, and the gateway's VmRSS and VmHWM (KiB) then."""
    # A file, not a pipe: the gateway logs every shadowed rule at start and must not block on it.
    log = open(os.path.join(tmp, "gateway.log"), "w+b")
    start = time.monotonic()
    proc = subprocess.Popen([edgerelay, "run", "--config", config, "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"gateway exited with {proc.returncode}: {log.read().decode()[-2000:]}")
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"gateway not listening within {timeout} s")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.005)
        took = time.monotonic() - start
        return took, proc_status(proc.pid, "VmRSS"), proc_status(proc.pid, "VmHWM")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def measure(args, n, tmp):
    port = free_port()
    config = os.path.join(tmp, f"rules-{n}.yaml")
    with open(config, "w") as f:
        subprocess.run([sys.executable, os.path.join(HERE, "gen_rules.py"), str(n), "--port", str(port)],
                       stdout=f, check=True, timeout=300)
    row = {"rules": n}
    code, wall, rss, out, err = timed_child([args.edgerelay, "check", "--config", config], args.timeout, tmp)
    if code != 0:
        raise RuntimeError(f"check exited {code}: {err.decode()[-2000:]}")
    if not out.decode().rstrip().endswith("OK"):
        raise RuntimeError("check did not print OK")
    row["check_s"] = round(wall, 3)
    row["check_max_rss_kib"] = rss
    row["check_warnings"] = err.decode().count(": warning: ")
    took, vmrss, vmhwm = gateway_start(args.edgerelay, config, port, args.timeout, tmp)
    row["start_s"] = round(took, 3)
    row["start_rss_kib"] = vmrss
    row["start_hwm_kib"] = vmhwm
    code, wall, _, out, err = timed_child([args.rules_bench, config], args.timeout, tmp)
    if code != 0:
        raise RuntimeError(f"rules bench exited {code}: {err.decode()[-2000:]}")
    row["decide"] = json.loads(out.decode().strip().splitlines()[-1])
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgerelay", default="build/proxy/edgerelay")
    ap.add_argument("--rules-bench", default="build/bench/edgerelay-rules-bench")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--out")
    ap.add_argument("--timeout", type=float, default=900, help="per child, seconds")
    ap.add_argument("--max-check-s", type=float)
    ap.add_argument("--max-check-rss-mib", type=float)
    ap.add_argument("--max-start-s", type=float)
    ap.add_argument("--max-decide-p99-us", type=float)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows, problems = [], []
    with tempfile.TemporaryDirectory(prefix="edgerelay-rules-") as tmp:
        for n in sizes:
            try:
                rows.append(measure(args, n, tmp))
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                problems.append(f"{n} rules: {e}")
    print("| rules | check s | check max RSS MiB | start s | start RSS MiB | load s | compile s "
          "| decide IP p50/p99 us | decide name p50/p99 us |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        d = r["decide"]
        print(f"| {r['rules']:,} | {r['check_s']:.2f} | {r['check_max_rss_kib'] / 1024:.0f} | {r['start_s']:.2f} "
              f"| {r['start_rss_kib'] / 1024:.0f} | {d['load_s']:.2f} | {d['compile_s']:.3f} "
              f"| {d['decide_ip_ns']['p50'] / 1000:.2f} / {d['decide_ip_ns']['p99'] / 1000:.2f} "
              f"| {d['decide_name_ns']['p50'] / 1000:.2f} / {d['decide_name_ns']['p99'] / 1000:.2f} |")
        limits = [("check_s", r["check_s"], args.max_check_s),
                  ("check max RSS MiB", r["check_max_rss_kib"] / 1024, args.max_check_rss_mib),
                  ("start_s", r["start_s"], args.max_start_s),
                  ("decide IP p99 us", d["decide_ip_ns"]["p99"] / 1000, args.max_decide_p99_us),
                  ("decide name p99 us", d["decide_name_ns"]["p99"] / 1000, args.max_decide_p99_us)]
        for name, value, limit in limits:
            if limit is not None and value > limit:
                problems.append(f"{r['rules']} rules: {name} {value:.2f} over the limit {limit}")
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    for p in problems:
        print("FAILED:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
