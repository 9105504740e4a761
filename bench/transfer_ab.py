#!/usr/bin/env python3
"""Artifact GET and `cairn pull` of two builds of Cairn, back to back, next to the
machine's anchors (one TCP stream over loopback, `openssl dgst -sha256`): for telling
what a change to the read path costs, on a machine whose throughput drifts between runs.

    .venv/mlflow3/bin/python bench/transfer_ab.py BINARY_A BINARY_B [--mib 512] [--rounds 3]

Each round serves a fresh data directory with each binary in turn (the order alternating
between rounds), uploads one random file through MLflow's artifact API and pushes it
with `cairn push`, then times: GET through MLflow's artifact route (what an MLflow
client downloads), GET of the blob through the native API (what `cairn pull` reads),
and `cairn pull` (download, re-hash, write). Prints every round and the medians.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

import mlflow_compare as bench


def get_mbps(url):
    t0 = time.perf_counter()
    with requests.get(url, stream=True) as r:
        r.raise_for_status()
        got = sum(len(c) for c in r.iter_content(1 << 20))
    return got / (time.perf_counter() - t0) / 1e6


def round_of(binary, work, big):
    os.environ["CAIRN_BIN"] = binary
    data = work / f"srv-{uuid.uuid4().hex[:8]}"
    data.mkdir()
    proc, url = bench.start_cairn(data)
    try:
        api = bench.Api(url)
        run = api.call("POST", "runs/create", json={"experiment_id": "0"})["run"]["info"]
        root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
        artifact = f"{url}/api/2.0/mlflow-artifacts/artifacts/{root}/big.bin"
        with open(big, "rb") as f:
            requests.put(artifact, data=f).raise_for_status()
        subprocess.run([binary, "--registry", url, "push", str(big), "--model", "big"],
                       check=True, capture_output=True)
        digest = subprocess.run(["sha256sum", str(big)], capture_output=True, text=True,
                                check=True).stdout.split()[0]
        size = big.stat().st_size
        out = data / "pulled"
        t0 = time.perf_counter()
        subprocess.run([binary, "--registry", url, "pull", "big@1", "-o", str(out)],
                       check=True, capture_output=True)
        pull = size / (time.perf_counter() - t0) / 1e6
        return {
            "MLflow artifact GET": get_mbps(artifact),
            "native blob GET": get_mbps(f"{url}/api/v1/blobs/sha256/{digest}"),
            "cairn pull": pull,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def openssl_mbps(path):
    t0 = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, capture_output=True)
    return path.stat().st_size / (time.perf_counter() - t0) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary_a")
    ap.add_argument("binary_b")
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-transfer-ab-"))
    big = work / "big.bin"
    with open(big, "wb") as f:
        for _ in range(args.mib):
            f.write(os.urandom(1 << 20))
    results = {args.binary_a: [], args.binary_b: []}
    try:
        for i in range(args.rounds):
            order = [args.binary_a, args.binary_b][:: 1 if i % 2 == 0 else -1]
            for binary in order:
                r = round_of(binary, work, big)
                results[binary].append(r)
                print(f"round {i + 1} {binary}: " + ", ".join(f"{k} {v:.0f} MB/s" for k, v in r.items()))
        net = bench.loopback(1024)
        sha = openssl_mbps(big)
    finally:
        subprocess.run(["rm", "-rf", str(work)])
    names = list(results[args.binary_a][0])
    print(f"\n{args.mib} MiB file, medians of {args.rounds} rounds, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n")
    print("| MB/s | A | B | B / A |")
    print("|---|---:|---:|---:|")
    for name in names:
        a = statistics.median(r[name] for r in results[args.binary_a])
        b = statistics.median(r[name] for r in results[args.binary_b])
        print(f"| {name} | {a:.0f} | {b:.0f} | {b / a:.0%} |")
    print(f"| anchor: loopback, one stream | {net:.0f} | | |")
    print(f"| anchor: openssl dgst -sha256 | {sha:.0f} | | |")
    print(f"\nA = {args.binary_a}\nB = {args.binary_b}")


if __name__ == "__main__":
    main()
