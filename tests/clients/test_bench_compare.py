#!/usr/bin/env python3
"""bench/compare end to end, small: the real edgerelay binary and the real load generator, every mode
once (throughput, rate for each handshake kind, pingpong, idle, churn), edgerelay at one and two workers.

Checks that the benchmark works from a build of a fresh clone: every row measured a number, no
cycle failed, the idle tunnels all opened and stayed open, and every run's JSON line is written.
The figures themselves are not judged here (that is what BENCHMARKS.md is for), with one exception:
churn's descriptor growth over its 400 sessions stays within what the relay pools may keep, so a
descriptor leaked per session fails.

usage: test_bench_compare.py EDGERELAY LOADGEN COMPARE
"""
import json
import os
import re
import subprocess
import sys
import tempfile

SCENARIOS = ["tput-push-1", "rate-socks5", "rate-socks4", "rate-http", "rate-forward", "pingpong", "idle", "churn"]
CHURN_SESSIONS, CHURN_EVERY = 400, 100
# The relay pools keep at most 16 pipes (2 descriptors each) per worker: the most churn's descriptor
# count may grow without a leak, for two workers.
CHURN_FD_SLACK = 2 * 16 * 2
ROW_RE = re.compile(r"^\| (\S+(?: \S+)?) \| ([^|]*) \| ([^|]*) \| ([^|]*) \| ([^|]*) \| ([^|]*) \|(.*)$")


def tables(text):
    """{scenario: {row label: [cells]}} from compare's Markdown output."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^### (\S+)", line)
        if m:
            current = out.setdefault(m.group(1), {})
            continue
        m = ROW_RE.match(line)
        if current is not None and m and m.group(1) != "row":
            current[m.group(1)] = [c.strip().rstrip("|").strip() for c in m.groups()[1:]]
    return out


def number(cell):
    return float(cell.replace(",", ""))


def check_churn(row, cells):
    """churn's row: sessions, errors, sessions/s, descriptors at each sample, their growth, then the
    VmRSS columns."""
    problems = []
    if cells[0].replace(",", "") != str(CHURN_SESSIONS) or cells[1] != "0":
        problems.append(f"churn {row}: {cells[0]} sessions with errors {cells[1]!r}, expected {CHURN_SESSIONS} and 0")
    samples = [s for s in cells[3].split(",") if s.strip()]
    if len(samples) != CHURN_SESSIONS // CHURN_EVERY + 1:
        problems.append(f"churn {row}: {len(samples)} descriptor samples {cells[3]!r}, expected one at the start and "
                        f"one per {CHURN_EVERY} sessions")
    else:
        growth = int(samples[-1]) - int(samples[0])
        if cells[4] != f"{growth:+d}":
            problems.append(f"churn {row}: descriptor growth {cells[4]!r} is not the samples' {growth:+d}")
        if growth > CHURN_FD_SLACK:
            problems.append(f"churn {row}: descriptors grew by {growth} over {CHURN_SESSIONS} sessions (samples "
                            f"{cells[3]}): more than the relay pools keep")
    rss = [s for s in cells[5].split("|")[0].split(",") if s.strip()]
    if len(rss) != len(samples) or not all(int(s) > 0 for s in rss):
        problems.append(f"churn {row}: VmRSS samples {cells[5]!r}")
    return problems


def main():
    edgerelay, loadgen, compare = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix="bench-compare-test-") as tmp:
        runs = os.path.join(tmp, "runs.jsonl")
        cmd = [sys.executable, compare, "--edgerelay", edgerelay, "--loadgen", loadgen, "--no-install",
               "--proxies", "direct,edgerelay", "--threads", "1,2", "--only", ",".join(SCENARIOS),
               "--rounds", "1", "--seconds", "0.5", "--warmup", "0", "--concurrency", "8",
               "--idle-tunnels", "200", "--churn-sessions", str(CHURN_SESSIONS), "--churn-every", str(CHURN_EVERY),
               "--max-minutes", "3", "--out", runs]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            raise SystemExit(f"compare exited {r.returncode}:\n{r.stderr[-3000:]}")
        t = tables(r.stdout)
        expected = {
            "tput-push-1": ["direct", "edgerelay:1t socks5", "edgerelay:2t socks5", "edgerelay:1t forward"],
            "rate-socks5": ["direct", "edgerelay:1t socks5", "edgerelay:2t socks5"],
            "rate-socks4": ["edgerelay:1t socks4", "edgerelay:2t socks4"],
            "rate-http": ["edgerelay:1t http-connect", "edgerelay:2t http-connect"],
            "rate-forward": ["edgerelay:1t forward", "edgerelay:2t forward"],
            "pingpong": ["direct", "edgerelay:1t socks5", "edgerelay:2t socks5", "edgerelay:1t forward"],
            "idle": ["edgerelay:1t socks5", "edgerelay:2t socks5"],
            "churn": ["edgerelay:1t socks5", "edgerelay:2t socks5"],
        }
        problems = []
        for scn, rows in expected.items():
            got = t.get(scn)
            if got is None:
                problems.append(f"{scn}: no table")
                continue
            for row in rows:
                cells = got.get(row)
                if cells is None:
                    problems.append(f"{scn}: no measured row {row!r} (rows: {sorted(got)})")
                    continue
                if scn == "churn":
                    problems += check_churn(row, cells)
                    continue
                try:
                    value = number(cells[0])
                except ValueError:
                    problems.append(f"{scn} {row}: median {cells[0]!r} is not a number")
                    continue
                # 200 idle tunnels may fit in pages the proxy already had: 0 KiB each is possible.
                if value < 0 or (value == 0 and scn not in ("pingpong", "idle")):
                    problems.append(f"{scn} {row}: median {value} is not positive")
                if cells[2] != "1":
                    problems.append(f"{scn} {row}: {cells[2]!r} runs, expected 1 successful run")
                if scn.startswith("rate-") and not cells[5].endswith(", 0"):
                    problems.append(f"{scn} {row}: cycles failed: {cells[5]!r}")
                if scn == "idle" and not cells[5].startswith("200/200"):
                    problems.append(f"{scn} {row}: tunnels opened/alive {cells[5]!r}, expected 200/200")
        with open(runs) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        measured = sum(len(v) for v in t.values())
        if len(lines) != measured:
            problems.append(f"{len(lines)} JSON lines in --out for {measured} measured rows")
        if problems:
            raise SystemExit("bench/compare smoke test failed:\n  " + "\n  ".join(problems) + "\n\n" + r.stdout[-4000:])
        print(f"bench/compare: {measured} rows measured in {len(t)} tables, {len(lines)} JSON lines")


if __name__ == "__main__":
    main()
