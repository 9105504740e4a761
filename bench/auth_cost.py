#!/usr/bin/env python3
"""What authentication costs: one build of Cairn on each MLflow call of the benchmark,
served without authentication and with `--auth` (every request carrying an admin token,
the write-rate limit off so that it measures the checks, not the limit), alternating
rounds on the same data, as bench/ab_compare.py does for two builds.

    .venv/mlflow3/bin/python bench/auth_cost.py target/release/cairn [--rounds 3]

Prints, per call, the median ops/s and server CPU µs per request of each mode, and the
difference.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import ab_compare
import mlflow_compare as bench


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--call", default="", help="only the calls whose name contains this")
    args = ap.parse_args()
    binary = str(Path(args.binary).resolve())
    os.environ["CAIRN_BIN"] = binary
    work = Path(tempfile.mkdtemp(prefix="cairn-auth-cost-"))
    proc, url = bench.start_cairn(work)
    try:
        ctx = bench.setup(bench.Api(url), args.runs, args.versions)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    token = subprocess.run([binary, "--registry", str(work / "cairn"), "token", "create", "--user", "bench",
                            "--role", "admin"], capture_output=True, text=True, check=True).stdout.strip()
    modes = {
        "open": ((), None),
        "--auth": (("--auth", "--writes-per-second", "0"), {"Authorization": f"Bearer {token}"}),
    }
    rows = []
    for name in [n for n in bench.wrk_workloads(ctx) if args.call in n]:
        results = {mode: [] for mode in modes}
        for round_ in range(args.rounds):
            for mode in list(modes) if round_ % 2 == 0 else list(modes)[::-1]:
                flags, headers = modes[mode]
                proc, url = bench.start_cairn(work, extra=flags)
                try:
                    call = bench.wrk_workloads(ctx)[name]
                    bench.wrk_measure(url, *call, 2, work, headers)
                    before = ab_compare.cpu_seconds(proc.pid)
                    rate, _, _, failed = bench.wrk_measure(url, *bench.wrk_workloads(ctx)[name],
                                                           args.seconds, work, headers)
                    if failed:
                        raise RuntimeError(f"{mode}: {failed} failed requests of {name}")
                    used = ab_compare.cpu_seconds(proc.pid) - before
                    results[mode].append((rate, used / (rate * args.seconds) * 1e6))
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                time.sleep(0.5)
        med = {m: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
               for m, v in results.items()}
        rows.append((name, med["open"], med["--auth"]))
    print(f"\n{args.rounds} alternating rounds of {args.seconds:.0f} s per mode, {os.cpu_count()} cores, {binary}\n")
    print("| call | open ops/s | --auth ops/s | ops/s change | open CPU µs/req | --auth CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (r0, c0), (r1, c1) in rows:
        print(f"| {name} | {r0:.0f} | {r1:.0f} | {(r1 / r0 - 1) * 100:+.1f}% | {c0:.0f} | {c1:.0f} |")


if __name__ == "__main__":
    main()
