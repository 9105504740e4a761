#!/usr/bin/env python3
"""The same MLflow REST workload against `cairn server` and `mlflow server` (SQLite
backend, default settings, proxied artifacts), in one run, side by side.

    .venv/mlflow3/bin/python bench/mlflow_compare.py [--seconds 5] [--runs 10000]
    .venv/mlflow3/bin/python bench/mlflow_compare.py --only cairn --cairn-db postgres://…
    CAIRN_BIN=… .venv/mlflow3/bin/python bench/mlflow_compare.py --only cairn --call get-by-alias

Prints ops/s and p50/p99 latency per call at concurrency 8, and the 256 MiB artifact
PUT/GET next to `dd … conv=fdatasync` (the disk's durable write bandwidth) and loopback
bandwidth measured in the same run. Needs the release binary (`cargo build --release`).
"""

import argparse
import concurrent.futures
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

import wrk

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, path):
    for _ in range(600):
        try:
            if requests.get(url + path, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def start_cairn(work, db=None, extra=()):
    """`cairn server` on SQLite under `work`, or on the PostgreSQL database `db` (an
    empty one: the benchmark creates its models and runs) with blobs under `work`;
    `extra`: more flags."""
    binary = os.environ.get("CAIRN_BIN", str(ROOT / "target" / "release" / "cairn"))
    store = ["--data", str(work / "cairn")] if db is None else ["--db", db, "--artifacts", str(work / "cairn-blobs")]
    proc = subprocess.Popen(
        [binary, "server", "--port", "0", *store, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    url = next(w for w in proc.stdout.readline().split() if w.startswith("http://"))
    wait_ready(url, "/readyz")
    return proc, url


def start_mlflow(work):
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
         "--artifacts-destination", str(work / "mlflow-artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "/health")
    return proc, url


class Api:
    def __init__(self, url):
        self.url = url
        self.local = threading.local()

    @property
    def session(self):
        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
        return self.local.s

    def call(self, method, path, **kw):
        r = self.session.request(method, f"{self.url}/api/2.0/mlflow/{path}", **kw)
        if not r.ok:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")
        return r.json() if r.content else {}


def measure(fn, seconds):
    """Calls fn(i) from CONCURRENCY threads for `seconds`; returns ops/s, p50, p99 (ms) and 0 failed (a failure raises)."""
    latencies = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    def worker():
        mine = []
        while time.perf_counter() < deadline:
            i = next(counter)
            t0 = time.perf_counter()
            fn(i)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    return len(latencies) / elapsed, p(0.5), p(0.99), 0


def wrk_measure(url, method, path, template, seconds, work, headers=None):
    """ops/s, p50, p99 (ms) and failed requests from wrk: 2 threads, 8 connections.
    `template` is each request's JSON body, with `$N` replaced by a counter (distinct
    across threads), or None; `headers` are sent with each request."""
    lua = wrk.script(work, method, path, template, headers)
    out = subprocess.run(wrk.command(url, lua, seconds, 2, CONCURRENCY),
                         capture_output=True, text=True, check=True).stdout
    measured = wrk.parse(out)
    if measured is None:
        sample = requests.request(method, url + path, data=template.replace("$N", "1") if template else None,
                                  headers={"Content-Type": "application/json", **(headers or {})})
        raise RuntimeError(f"{method} {path}: error answers, e.g. {sample.status_code} {sample.text[:300]}")
    return measured


def parallel(fn, items):
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(fn, items))


def setup(api, runs_count, versions_count):
    exp = api.call("POST", "experiments/create", json={"name": f"bench-{uuid.uuid4().hex[:8]}"})["experiment_id"]
    run = api.call("POST", "runs/create", json={"experiment_id": exp, "start_time": int(time.time() * 1000)})["run"]["info"]
    run_id = run["run_id"]
    artifact_root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    requests.put(f"{api.url}/api/2.0/mlflow-artifacts/artifacts/{artifact_root}/model/weights.bin", data=b"w" * 4096).raise_for_status()
    model = f"bench-{uuid.uuid4().hex[:8]}"
    api.call("POST", "registered-models/create", json={"name": model})
    source = f"runs:/{run_id}/model"

    def create_version(_):
        return api.call("POST", "model-versions/create", json={"name": model, "source": source, "run_id": run_id})

    create_version(0)
    api.call("POST", "registered-models/alias", json={"name": model, "alias": "champion", "version": "1"})

    # 1,000 versions of another model, for search.
    search_model = f"bench-search-{uuid.uuid4().hex[:8]}"
    api.call("POST", "registered-models/create", json={"name": search_model})
    parallel(lambda _: api.call("POST", "model-versions/create", json={"name": search_model, "source": source, "run_id": run_id}), range(versions_count))

    # Runs with a metric each, for runs/search.
    search_exp = api.call("POST", "experiments/create", json={"name": f"bench-runs-{uuid.uuid4().hex[:8]}"})["experiment_id"]

    def make_run(i):
        rid = api.call("POST", "runs/create", json={"experiment_id": search_exp, "start_time": int(time.time() * 1000)})["run"]["info"]["run_id"]
        api.call("POST", "runs/log-metric", json={"run_id": rid, "key": "acc", "value": (i % 1000) / 1000, "timestamp": 0, "step": 0})

    parallel(make_run, range(runs_count))
    return dict(exp=exp, run_id=run_id, model=model, source=source, search_model=search_model, search_exp=search_exp)


def wrk_workloads(ctx):
    """The same calls as `workloads`, as (method, path, body template) for wrk."""
    from urllib.parse import quote

    now = int(time.time() * 1000)
    run = ctx["run_id"]
    metrics = ",".join(f'{{"key":"m{k}","value":{k * 0.5},"timestamp":{now},"step":$N}}' for k in range(100))
    return {
        "log-metric": ("POST", "/api/2.0/mlflow/runs/log-metric",
                       f'{{"run_id":"{run}","key":"loss","value":$N,"timestamp":{now},"step":$N}}'),
        "log-batch(100)": ("POST", "/api/2.0/mlflow/runs/log-batch", f'{{"run_id":"{run}","metrics":[{metrics}]}}'),
        "model-versions/create": ("POST", "/api/2.0/mlflow/model-versions/create",
                                  f'{{"name":"{ctx["model"]}","source":"{ctx["source"]}","run_id":"{run}"}}'),
        "get-by-alias": ("GET", f"/api/2.0/mlflow/registered-models/alias?name={ctx['model']}&alias=champion", None),
        "model-versions/search (1,000 versions)": (
            "GET", "/api/2.0/mlflow/model-versions/search?max_results=1000&filter=" + quote(f"name='{ctx['search_model']}'"), None),
        "runs/search metrics filter": ("POST", "/api/2.0/mlflow/runs/search",
                                       f'{{"experiment_ids":["{ctx["search_exp"]}"],"filter":"metrics.acc > 0.99","max_results":100}}'),
    }


def workloads(api, ctx):
    now = int(time.time() * 1000)
    batch = [{"key": f"m{k}", "value": k * 0.5, "timestamp": now, "step": 0} for k in range(100)]
    return {
        "log-metric": lambda i: api.call("POST", "runs/log-metric", json={"run_id": ctx["run_id"], "key": "loss", "value": 1.0 / (i + 1), "timestamp": now + i, "step": i}),
        "log-batch(100)": lambda i: api.call("POST", "runs/log-batch", json={"run_id": ctx["run_id"], "metrics": [dict(m, step=i) for m in batch]}),
        "model-versions/create": lambda i: api.call("POST", "model-versions/create", json={"name": ctx["model"], "source": ctx["source"], "run_id": ctx["run_id"]}),
        "get-by-alias": lambda i: api.call("GET", "registered-models/alias", params={"name": ctx["model"], "alias": "champion"}),
        "model-versions/search (1,000 versions)": lambda i: api.call("GET", "model-versions/search", params={"filter": f"name='{ctx['search_model']}'", "max_results": 1000}),
        "runs/search metrics filter": lambda i: api.call("POST", "runs/search", json={"experiment_ids": [ctx["search_exp"]], "filter": "metrics.acc > 0.99", "max_results": 100}),
    }


def artifact_transfer(url, ctx, api, path):
    run = api.call("GET", "runs/get", params={"run_id": ctx["run_id"]})["run"]["info"]
    root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    target = f"{url}/api/2.0/mlflow-artifacts/artifacts/{root}/big/{uuid.uuid4().hex}.bin"
    size = path.stat().st_size
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        requests.put(target, data=f).raise_for_status()
        put = size / (time.perf_counter() - t0) / 1e6
    t0 = time.perf_counter()
    with requests.get(target, stream=True) as r:
        r.raise_for_status()
        got = sum(len(c) for c in r.iter_content(1 << 20))
    get = got / (time.perf_counter() - t0) / 1e6
    assert got == size
    return put, get


def dd_fdatasync(work, mib):
    out = subprocess.run(["dd", "if=/dev/zero", f"of={work / 'dd.bin'}", "bs=1M", f"count={mib}", "conv=fdatasync"],
                         capture_output=True, text=True)
    (work / "dd.bin").unlink()
    t0 = out.stderr.strip().splitlines()[-1]
    secs = float(t0.split(",")[-2].split()[0])
    return mib * 1.048576 / secs


def loopback(mib):
    """MB/s of one TCP stream over loopback, with 1 MiB writes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    total = mib * 1024 * 1024

    def sink():
        conn, _ = srv.accept()
        got = 0
        while got < total:
            got += len(conn.recv(1 << 20))
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    c = socket.create_connection(("127.0.0.1", port))
    chunk = b"\0" * (1 << 20)
    t0 = time.perf_counter()
    for _ in range(mib):
        c.sendall(chunk)
    t.join()
    c.close()
    srv.close()
    return total / (time.perf_counter() - t0) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--artifact-mib", type=int, default=256)
    ap.add_argument("--only", choices=["cairn", "mlflow"], help="measure one server (for iterating; the table needs both)")
    ap.add_argument("--cairn-db", help="run Cairn on this PostgreSQL database instead of SQLite")
    ap.add_argument("--call", help="measure only the calls whose name contains this, no artifacts (with --only)")
    args = ap.parse_args()
    if args.call and not args.only:
        ap.error("--call measures part of the workload: name the server with --only")
    work = Path(tempfile.mkdtemp(prefix="cairn-vs-mlflow-"))
    big = work / "big.bin"
    with open(big, "wb") as f:
        for _ in range(args.artifact_mib):
            f.write(os.urandom(1 << 20))
    results = {}
    transfers = {}
    try:
        cairn = lambda w: start_cairn(w, args.cairn_db)
        servers = [(l, s) for l, s in (("cairn", cairn), ("mlflow", start_mlflow)) if args.only in (None, l)]
        for label, start in servers:
            proc, url = start(work)
            try:
                api = Api(url)
                print(f"[{label}] setting up {args.runs} runs and {args.versions} versions…", file=sys.stderr)
                ctx = setup(api, args.runs, args.versions)
                if shutil.which("wrk"):
                    calls = wrk_workloads(ctx).items()
                    measured = lambda c: wrk_measure(url, *c, args.seconds, work)
                else:
                    calls = workloads(api, ctx).items()
                    measured = lambda fn: measure(fn, args.seconds)
                for name, call in calls:
                    if args.call and args.call not in name:
                        continue
                    results[(label, name)] = measured(call)
                    if label == "cairn" and results[(label, name)][3]:
                        raise RuntimeError(f"cairn failed {results[(label, name)][3]} requests of {name}")
                    print(f"[{label}] {name}: {results[(label, name)][0]:.1f} ops/s", file=sys.stderr)
                if not args.call:
                    transfers[label] = artifact_transfer(url, ctx, api, big)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        if args.only:
            return
        disk = dd_fdatasync(work, args.artifact_mib)
        net = loopback(1024)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    tool = "wrk -t2 -c8" if shutil.which("wrk") else "Python threads"
    print(f"\nConcurrency {CONCURRENCY} ({tool}), {args.seconds:.0f} s per call, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n")
    print("| call | cairn ops/s | cairn p50 / p99 (ms) | mlflow ops/s | mlflow p50 / p99 (ms) | cairn / mlflow |")
    print("|---|---:|---:|---:|---:|---:|")
    names = [n for (l, n) in results if l == "cairn"]
    for name in names:
        c, m = results[("cairn", name)], results[("mlflow", name)]
        failed = f" ({m[3]} failed)" if m[3] else ""
        print(f"| {name} | {c[0]:.0f} | {c[1]:.1f} / {c[2]:.1f} | {m[0]:.1f}{failed} | {m[1]:.0f} / {m[2]:.0f} | {c[0] / m[0]:.0f}× |")
    print(f"\n| {args.artifact_mib} MiB artifact | cairn MB/s | mlflow MB/s | anchor MB/s | cairn / anchor |")
    print("|---|---:|---:|---:|---:|")
    print(f"| PUT | {transfers['cairn'][0]:.0f} | {transfers['mlflow'][0]:.0f} | {disk:.0f} (dd conv=fdatasync) | {transfers['cairn'][0] / disk:.0%} |")
    print(f"| GET | {transfers['cairn'][1]:.0f} | {transfers['mlflow'][1]:.0f} | {net:.0f} (loopback) | {transfers['cairn'][1] / net:.0%} |")


if __name__ == "__main__":
    main()
