#!/usr/bin/env python3
"""Two builds of Cairn on one MLflow call, back to back, on the same data: for telling
a 10–20% change from noise on a machine whose throughput drifts by more than that
between runs.

    .venv/bench/bin/python bench/ab_compare.py --call "runs/search" BINARY_A BINARY_B
    .venv/bench/bin/python bench/ab_compare.py --engine postgres --call create BINARY_A BINARY_B

Sets the benchmark's data up once (as bench/mlflow_compare.py does, with BINARY_A),
then for each round serves that same data directory with each binary in turn (the
order alternating between rounds), warms up for 2 s, measures the call with wrk, and
stops the server. On PostgreSQL (`--engine postgres`) both serve one database of a
throwaway cluster, as in bench/mlflow_compare.py. Prints each binary's ops/s and server CPU time per request (user +
system, from /proc) for every round, and their medians. CPU per request moves less
with the machine's mood than ops/s does. Read-only calls see identical data in every
round; write calls grow it, which the alternating order spreads over both binaries.
Both builds must accept the same schema: one that adds a migration upgrades the data
directory, and a build without that migration then refuses to open it.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import mlflow_compare as bench


def cpu_seconds(pid):
    """User + system CPU time of process `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(binary, work, db):
    os.environ["CAIRN_BIN"] = binary
    return bench.start_cairn(work, db)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs=2, metavar="BINARY")
    ap.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--call", required=True, help="the call whose name contains this (first match)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--copy-data", action="store_true",
                    help="give the second binary a copy of the data directory the first set "
                         "up (for builds whose schemas differ: one with a newer migration "
                         "upgrades a directory the other then refuses; the copy keeps the "
                         "rows and their layout identical)")
    args = ap.parse_args()
    if args.engine == "postgres" and args.copy_data:
        ap.error("--copy-data copies a SQLite data directory")
    pg = bench.ThrowawayPostgres() if args.engine == "postgres" else None
    try:
        compare(args, pg)
    finally:
        if pg:
            pg.stop()


def compare(args, pg):
    binaries = [str(Path(b).resolve()) for b in args.binaries]
    work = Path(tempfile.mkdtemp(prefix="cairn-ab-"))
    db = None
    if pg:
        pg.create_database("cairn")
        db = pg.url_of("cairn")
    proc, url = serve(binaries[0], work, db)
    try:
        ctx = bench.setup(bench.Api(url), args.runs, args.versions)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    works = {binaries[0]: work, binaries[1]: work}
    if args.copy_data:
        works[binaries[1]] = Path(tempfile.mkdtemp(prefix="cairn-ab-"))
        shutil.copytree(work, works[binaries[1]], dirs_exist_ok=True)

    def workload():
        # Built anew for every wrk run: the metric templates carry the current time, so
        # each run logs new values (wrk's counter starts over every time, and a value
        # logged again is only a lookup).
        return next((n, c) for n, c in bench.wrk_workloads(ctx).items() if args.call in n)

    name, _ = workload()

    results = {b: [] for b in binaries}
    for round_ in range(args.rounds):
        for binary in binaries if round_ % 2 == 0 else binaries[::-1]:
            work = works[binary]
            proc, url = serve(binary, work, db)
            try:
                bench.wrk_measure(url, *workload()[1], 2, work)
                time.sleep(0.01)
                before = cpu_seconds(proc.pid)
                rate, _, _, failed = bench.wrk_measure(url, *workload()[1], args.seconds, work)
                if failed:
                    raise RuntimeError(f"{binary}: {failed} failed requests of {name}")
                used = cpu_seconds(proc.pid) - before
                results[binary].append((rate, used / (rate * args.seconds) * 1e6))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            time.sleep(1)

    print(f"\n{name} on {args.engine}: {args.rounds} alternating rounds of {args.seconds:.0f} s, {os.cpu_count()} cores\n")
    print("| binary | ops/s per round | median ops/s | CPU µs/request per round | median CPU µs/request |")
    print("|---|---|---:|---|---:|")
    for binary, rounds in results.items():
        rates = [r for r, _ in rounds]
        cpu = [c for _, c in rounds]
        print(f"| {binary} | {', '.join(f'{r:.0f}' for r in rates)} | {statistics.median(rates):.0f} "
              f"| {', '.join(f'{c:.0f}' for c in cpu)} | {statistics.median(cpu):.0f} |")


if __name__ == "__main__":
    main()
