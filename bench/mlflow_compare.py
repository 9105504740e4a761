#!/usr/bin/env python3
"""The same MLflow REST workload against `cairn server` and `mlflow server` (default
settings, proxied artifacts), on both engines, in one run, side by side: both on SQLite,
then both on one throwaway PostgreSQL cluster (PostgreSQL's default settings, a database
each).

    python3 -m venv .venv/bench && .venv/bench/bin/pip install -r bench/requirements.txt
    .venv/bench/bin/python bench/mlflow_compare.py [--seconds 5] [--runs 10000] [--engines sqlite,postgres]
    .venv/bench/bin/python bench/mlflow_compare.py --only cairn --call runs/search --engines postgres

Prints, per call and engine, ops/s and p50/p99 latency at concurrency 8 (wrk), the
ratio to MLflow, and for the calls that do database work the ceiling: the same
statements run by the engine alone on the same data (`bench/ceilings.py`), so the
distance to the limit shows. Each figure is the median of three rounds; Cairn's rounds
alternate with the engine alone's. Also the client's own capacity (wrk against a call that
does nothing) and the 256 MiB artifact PUT/GET next to `dd … conv=fdatasync` and
loopback bandwidth. Needs the release binary (`cargo build --release`), wrk, pgbench
and PostgreSQL's server tools.
"""

import argparse
import concurrent.futures
import json
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
from ceilings import ceilings_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from infra import ThrowawayPostgres  # noqa: E402

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


def start_mlflow(work, db=None):
    """`mlflow server` (4 workers, its default) on SQLite under `work`, or on the
    PostgreSQL database `db`."""
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    # psycopg2, the driver bench/requirements.txt installs, named: MLflow would pick another.
    backend = f"sqlite:///{work / 'mlflow.db'}" if db is None else db.replace("postgres://", "postgresql+psycopg2://", 1)
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", backend, "--artifacts-destination", str(work / "mlflow-artifacts")],
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


# The runs of the search experiment: what a sweep logs, five metrics and five params
# each. `acc` spreads evenly over [0, 1), so `metrics.acc > 0.989` matches 1% of the runs
# (a selective filter) and `metrics.acc > 0.5` half of them (an experiment's listing).
RUN_METRICS = ("acc", "loss", "f1", "precision", "recall")
RUN_PARAMS = ("lr", "batch_size", "optimizer", "epochs", "seed")


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

    search_exp = api.call("POST", "experiments/create", json={"name": f"bench-runs-{uuid.uuid4().hex[:8]}"})["experiment_id"]
    start = int(time.time() * 1000)

    def make_run(i):
        rid = api.call("POST", "runs/create", json={"experiment_id": search_exp, "start_time": start + i})["run"]["info"]["run_id"]
        acc = (i % 1000) / 1000
        metrics = [{"key": k, "value": acc if k == "acc" else ((i * 7 + n) % 997) / 997, "timestamp": start + i, "step": 0}
                   for n, k in enumerate(RUN_METRICS)]
        params = [{"key": k, "value": str((i + n) % 10)} for n, k in enumerate(RUN_PARAMS)]
        api.call("POST", "runs/log-batch", json={"run_id": rid, "metrics": metrics, "params": params})

    parallel(make_run, range(runs_count))
    return dict(exp=exp, run_id=run_id, model=model, source=source, search_model=search_model, search_exp=search_exp,
                artifact_root=artifact_root.strip("/"))


def search_body(ctx, threshold):
    return f'{{"experiment_ids":["{ctx["search_exp"]}"],"filter":"metrics.acc > {threshold}","max_results":100}}'


# The calls, by name; each also names its ceiling in bench/ceilings.py, if it has one.
CALLS = {
    "log-metric": "log-metric",
    "log-batch(100)": "log-batch",
    "model-versions/create": "model-versions/create",
    "get-by-alias": "get-by-alias",
    "model-versions/search (1,000 versions)": None,
    "runs/search, 1% match": "runs/search 1%",
    "runs/search, 50% match, 100 full runs": "runs/search 50%",
}


def wrk_workloads(ctx):
    """Each call of CALLS as (method, path, body template) for wrk."""
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
        "runs/search, 1% match": ("POST", "/api/2.0/mlflow/runs/search", search_body(ctx, 0.989)),
        "runs/search, 50% match, 100 full runs": ("POST", "/api/2.0/mlflow/runs/search", search_body(ctx, 0.5)),
    }


def check_answers(api, ctx):
    """The searches answer what they are measured for: 100 runs with their five metrics
    and params (a server that answered less would be measured doing less)."""
    for threshold in (0.989, 0.5):
        runs = api.call("POST", "runs/search", json=json.loads(search_body(ctx, threshold)))["runs"]
        assert len(runs) == 100, f"metrics.acc > {threshold}: {len(runs)} runs"
        assert all(len(r["data"]["metrics"]) == 5 and len(r["data"]["params"]) == 5 for r in runs)
        assert all(next(m["value"] for m in r["data"]["metrics"] if m["key"] == "acc") > threshold for r in runs)


def client_capacity(url, seconds, work):
    """What wrk gets from a call that does nothing (Cairn's `/healthz`): the most the
    client and the loopback allow on this machine with a server beside them."""
    return wrk_measure(url, "GET", "/healthz", None, seconds, work)


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


def median_of(rounds):
    """Each field's median over the rounds (ops/s, p50, p99), failures summed."""
    pick = lambda i: statistics.median(r[i] for r in rounds)
    return pick(0), pick(1), pick(2), sum(r[3] for r in rounds)


def measure_engine(engine, args, work, big, results, ceilings, transfers, capacity):
    """Both servers (or `--only` one) on `engine`; fills the result maps, keyed by
    (engine, server, call). Each call is measured `--rounds` times and reported as the
    medians; on Cairn, each round is followed by a round of the engine alone on the
    same data, so that both see the machine in the same state (its speed drifts by
    tens of percent over minutes)."""
    pg = ThrowawayPostgres() if engine == "postgres" else None
    try:
        for label in ("cairn", "mlflow"):
            if args.only not in (None, label):
                continue
            db = None
            if pg:
                pg.create_database(label)
                db = pg.url_of(label)
            proc, url = (start_cairn if label == "cairn" else start_mlflow)(work, db)
            store = db if pg else work / "cairn" / "cairn.db"
            try:
                api = Api(url)
                print(f"[{engine} {label}] setting up {args.runs} runs and {args.versions} versions…", file=sys.stderr)
                ctx = setup(api, args.runs, args.versions)
                check_answers(api, ctx)
                if label == "cairn":
                    capacity[engine] = client_capacity(url, args.seconds, work)
                for name, call in wrk_workloads(ctx).items():
                    if args.call and args.call not in name:
                        continue
                    ceiling = CALLS[name] if label == "cairn" and not args.no_ceilings else None
                    rounds, alone = [], []
                    for _ in range(args.rounds):
                        rounds.append(wrk_measure(url, *call, args.seconds, work))
                        if ceiling:
                            # The server is idle meanwhile: the engine has the machine.
                            alone.append(ceilings_of(engine, store, ctx, {ceiling}, args.seconds, work)[ceiling])
                    got = results[(engine, label, name)] = median_of(rounds)
                    if label == "cairn" and got[3]:
                        raise RuntimeError(f"cairn failed {got[3]} requests of {name}")
                    each = ", ".join(f"{r[0]:.0f}" for r in rounds)
                    print(f"[{engine} {label}] {name}: {got[0]:.1f} ops/s ({each}), p99 {got[2]:.1f} ms", file=sys.stderr)
                    if alone:
                        ceilings[(engine, ceiling)] = median_of(alone)
                        each = ", ".join(f"{r[0]:.0f}" for r in alone)
                        print(f"[{engine} alone] {ceiling}: {ceilings[(engine, ceiling)][0]:.1f} ops/s ({each})", file=sys.stderr)
                if not args.call:
                    transfers[(engine, label)] = artifact_transfer(url, ctx, api, big)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            if not pg:
                (work / "mlflow.db").unlink(missing_ok=True)
                shutil.rmtree(work / "cairn", ignore_errors=True)
    finally:
        if pg:
            pg.stop()


def print_tables(args, results, ceilings, transfers, capacity, disk, net):
    print(f"\nConcurrency {CONCURRENCY} (wrk -t2 -c8), medians of {args.rounds} × {args.seconds:.0f} s per call"
          f" (Cairn's rounds alternating with the engine alone's), {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}; {args.runs:,} runs × ({len(RUN_METRICS)} metrics, {len(RUN_PARAMS)} params)\n")
    print("| call | engine | cairn ops/s | cairn p50 / p99 (ms) | mlflow ops/s | mlflow p50 / p99 (ms) | cairn / mlflow | engine alone ops/s | cairn / engine alone |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for engine in args.engines:
        for name, ceiling in CALLS.items():
            c, m = results.get((engine, "cairn", name)), results.get((engine, "mlflow", name))
            if c is None or m is None:
                continue
            failed = f" ({m[3]} failed)" if m[3] else ""
            alone = ceilings.get((engine, ceiling))
            alone_cols = f"{alone[0]:,.0f} | {c[0] / alone[0]:.0%}" if alone else "– | –"
            print(f"| {name} | {engine} | {c[0]:,.0f} | {c[1]:.1f} / {c[2]:.1f} | {m[0]:,.1f}{failed} | "
                  f"{m[1]:,.0f} / {m[2]:,.0f} | {c[0] / m[0]:,.0f}× | {alone_cols} |")
    for engine, got in capacity.items():
        print(f"\nClient capacity ({engine} run): wrk against `GET /healthz` {got[0]:,.0f} ops/s, p99 {got[2]:.1f} ms")
    if transfers:
        print(f"\n| {args.artifact_mib} MiB artifact | engine | cairn MB/s | mlflow MB/s | anchor MB/s | cairn / anchor |")
        print("|---|---|---:|---:|---:|---:|")
        for engine in args.engines:
            c, m = transfers.get((engine, "cairn")), transfers.get((engine, "mlflow"))
            if c and m:
                print(f"| PUT | {engine} | {c[0]:.0f} | {m[0]:.0f} | {disk:.0f} (dd conv=fdatasync) | {c[0] / disk:.0%} |")
                print(f"| GET | {engine} | {c[1]:.0f} | {m[1]:.0f} | {net:.0f} (loopback) | {c[1] / net:.0%} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per call; the table shows their medians")
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--artifact-mib", type=int, default=256)
    ap.add_argument("--engines", default="sqlite,postgres", type=lambda s: s.split(","))
    ap.add_argument("--only", choices=["cairn", "mlflow"], help="measure one server (for iterating; the table needs both)")
    ap.add_argument("--call", help="measure only the calls whose name contains this, no artifacts")
    ap.add_argument("--no-ceilings", action="store_true", help="skip the engine-alone measurements")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        ap.error("needs wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="cairn-vs-mlflow-"))
    big = work / "big.bin"
    with open(big, "wb") as f:
        for _ in range(args.artifact_mib):
            f.write(os.urandom(1 << 20))
    results, ceilings, transfers, capacity = {}, {}, {}, {}
    try:
        for engine in args.engines:
            measure_engine(engine, args, work, big, results, ceilings, transfers, capacity)
        disk = dd_fdatasync(work, args.artifact_mib)
        net = loopback(1024)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.only:
        for key, got in sorted(results.items()):
            print(" ".join(key), f"{got[0]:,.1f} ops/s p50 {got[1]:.1f} p99 {got[2]:.1f} ms")
        for key, got in sorted(ceilings.items()):
            print(" ".join(key), f"engine alone {got[0]:,.1f} ops/s")
        return
    print_tables(args, results, ceilings, transfers, capacity, disk, net)


if __name__ == "__main__":
    main()
