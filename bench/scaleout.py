#!/usr/bin/env python3
"""Registry throughput and search latency on PostgreSQL with one and two servers, next
to the embedded SQLite default, in one run.

    .venv/mlflow3/bin/python bench/scaleout.py [--seconds 5] [--models 10000] [--versions-per-model 100]

For each setup — SQLite (1 server), PostgreSQL (1 server), PostgreSQL (2 servers on one
database) — it measures MLflow `model-versions/create` and `registered-models/alias`
(get-by-alias) at concurrency 8 with wrk (split over the servers), then seeds
models × versions-per-model versions (default 1,000,000 across 10,000 models, inserted
with SQL) and measures search latency: `model-versions/search` of one model's 100
versions, `registered-models/search` by name prefix, and get-by-alias, p50/p99.
Artifacts stay on a local directory shared by the servers (blobs are not what this
measures). Needs the release binary, wrk, psql and PostgreSQL (CAIRN_TEST_POSTGRES).
"""

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import infra  # noqa: E402
import wrk  # noqa: E402

CAIRN = os.environ.get("CAIRN_BIN", str(ROOT / "target" / "release" / "cairn"))
CONNECTIONS = 8


def load(urls, method, path, body, seconds, work):
    """Runs wrk against every URL at once (the 8 connections split between them);
    returns total ops/s and the worst p50/p99 (ms) among them."""
    lua = wrk.script(work, method, path, body)
    per = CONNECTIONS // len(urls)
    procs = [subprocess.Popen(wrk.command(url, lua, seconds, 1, per), stdout=subprocess.PIPE, text=True)
             for url in urls]
    rate, p50, p99 = 0.0, 0.0, 0.0
    for proc in procs:
        out = proc.communicate()[0]
        measured = wrk.parse(out)
        if measured is None or measured[3]:
            raise RuntimeError(f"{method} {path}: error answers\n{out}")
        rate += measured[0]
        p50, p99 = max(p50, measured[1]), max(p99, measured[2])
    return rate, p50, p99


def call(url, method, path, **kw):
    r = requests.request(method, f"{url}/api/2.0/mlflow/{path}", **kw)
    r.raise_for_status()
    return r.json()


def prepare_writes(url):
    """A model with one version and alias `champion`, and a run whose artifacts every
    created version snapshots."""
    exp = call(url, "POST", "experiments/create", json={"name": f"bench-{uuid.uuid4().hex[:8]}"})["experiment_id"]
    run = call(url, "POST", "runs/create", json={"experiment_id": exp, "start_time": 0})["run"]["info"]
    root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    requests.put(f"{url}/api/2.0/mlflow-artifacts/artifacts/{root}/model/weights.bin", data=b"w" * 4096).raise_for_status()
    model = f"bench-{uuid.uuid4().hex[:8]}"
    call(url, "POST", "registered-models/create", json={"name": model})
    source = f"runs:/{run['run_id']}/model"
    call(url, "POST", "model-versions/create", json={"name": model, "source": source, "run_id": run["run_id"]})
    call(url, "POST", "registered-models/alias", json={"name": model, "alias": "champion", "version": "1"})
    return model, source, run["run_id"]


# Seeds `models` models of `per_model` versions each (one file each, sharing one blob),
# with alias `champion` on each model's last version. Standard SQL with a recursive
# series, run as is by SQLite and PostgreSQL.
SEED = """
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {models})
INSERT INTO models (name, description, next_version, created_by, created_at, updated_at)
SELECT 'seed-' || (1000000 + i), '', {per_model} + 1, 'bench', 0, 0 FROM s;

WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {per_model})
INSERT INTO versions (model_id, number, digest, description, file_count, size, created_by, created_at,
                      source, run_id, run_link, stage, updated_at)
SELECT m.id, s.i, '{digest}', '', 1, 4096, 'bench', s.i, '', '', '', 'None', s.i
FROM models m CROSS JOIN s WHERE m.name LIKE 'seed-%';

INSERT INTO version_files (version_id, path, size, sha256)
SELECT v.id, 'model.bin', 4096, '{digest}' FROM versions v JOIN models m ON m.id = v.model_id
WHERE m.name LIKE 'seed-%';

INSERT INTO aliases (model_id, alias, version_id)
SELECT v.model_id, 'champion', v.id FROM versions v JOIN models m ON m.id = v.model_id
WHERE m.name LIKE 'seed-%' AND v.number = {per_model};
"""


def seed(store, models, per_model):
    sql = SEED.format(models=models, per_model=per_model, digest="0" * 64)
    t0 = time.perf_counter()
    if store["kind"] == "sqlite":
        db = sqlite3.connect(store["path"], timeout=60)
        db.executescript(sql)
        db.close()
    else:
        subprocess.run(["psql", store["url"], "-q", "-v", "ON_ERROR_STOP=1", "-c", sql + "ANALYZE;"], check=True)
    return time.perf_counter() - t0


def measure_setup(label, store, servers_count, args, work):
    data = work / label
    data.mkdir()
    store_args = ["--data", str(data)] if store["kind"] == "sqlite" else ["--db", store["url"], "--artifacts", str(data)]
    servers = []
    for _ in range(servers_count):
        proc = subprocess.Popen([CAIRN, "server", "--port", "0", *store_args], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
        url = next(w for w in proc.stdout.readline().split() if w.startswith("http://"))
        infra.wait_until(lambda: requests.get(f"{url}/readyz", timeout=1).ok, "cairn server")
        servers.append((proc, url))
    urls = [u for _, u in servers]
    results = {}
    try:
        model, source, run_id = prepare_writes(urls[0])
        results["model-versions/create"] = load(
            urls, "POST", "/api/2.0/mlflow/model-versions/create",
            f'{{"name":"{model}","source":"{source}","run_id":"{run_id}"}}', args.seconds, work)
        results["get-by-alias"] = load(
            urls, "GET", f"/api/2.0/mlflow/registered-models/alias?name={model}&alias=champion", None, args.seconds, work)
        print(f"[{label}] writes and reads measured; seeding…", file=sys.stderr)
        if args.models:
            store["seed_seconds"] = seed(store, args.models, args.versions_per_model)
            probe = f"seed-{1000000 + args.models // 2}"
            searches = {
                f"model-versions/search, 1 model of {args.versions_per_model}": (
                    "GET", "/api/2.0/mlflow/model-versions/search?max_results=1000&filter=" + quote(f"name='{probe}'")),
                "registered-models/search, name prefix": (
                    "GET", "/api/2.0/mlflow/registered-models/search?max_results=100&filter="
                    + quote(f"name LIKE '{probe[:-2]}%'")),
                "get-by-alias, seeded model": (
                    "GET", f"/api/2.0/mlflow/registered-models/alias?name={probe}&alias=champion"),
            }
            for name, (method, path) in searches.items():
                results[name] = load(urls, method, path, None, args.seconds, work)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--models", type=int, default=10000)
    ap.add_argument("--versions-per-model", type=int, default=100)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="cairn-scaleout-"))
    table = {}
    seeds = {}
    try:
        for label, kind, count in (("sqlite, 1 server", "sqlite", 1), ("postgres, 1 server", "postgres", 1),
                                   ("postgres, 2 servers", "postgres", 2)):
            if kind == "sqlite":
                store = {"kind": "sqlite", "path": str(work / label.replace(" ", "").replace(",", "_") / "cairn.db")}
                db = None
            else:
                db = infra.Database()
                store = {"kind": "postgres", "url": db.url}
            try:
                safe = label.replace(" ", "").replace(",", "_")
                store.setdefault("path", str(work / safe / "cairn.db"))
                table[label] = measure_setup(safe, store, count, args, work)
                seeds[label] = store.get("seed_seconds")
            finally:
                if db:
                    db.drop()
            for name, (rate, p50, p99) in table[label].items():
                print(f"[{label}] {name}: {rate:.0f} ops/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    labels = list(table)
    total = args.models * args.versions_per_model
    print(f"\nwrk, {CONNECTIONS} connections split over the servers, {args.seconds:.0f} s per call, "
          f"{os.cpu_count()} cores (servers, PostgreSQL and wrk share them), {time.strftime('%Y-%m-%d')}; "
          f"search after seeding {total:,} versions across {args.models:,} models\n")
    print("| call | " + " | ".join(f"{l}: ops/s, p50 / p99 ms" for l in labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name in table[labels[0]]:
        cells = []
        for l in labels:
            rate, p50, p99 = table[l].get(name, (0, 0, 0))
            cells.append(f"{rate:.0f}, {p50:.1f} / {p99:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nseeding (SQL): " + ", ".join(f"{l} {s:.0f} s" for l, s in seeds.items() if s))


if __name__ == "__main__":
    main()
