#!/usr/bin/env python3
"""`cairn serve` next to `mlflow models serve` on the same scikit-learn model, in one run.

The model: a RandomForestClassifier of 100 trees (10 features, 2 classes) converted by
skl2onnx (ZipMap on, as skl2onnx exports by default) and saved with mlflow.onnx and a
column signature, the way a tabular model reaches a registry. Cairn serves it from a
registry (pushed, then `cairn serve NAME@production`); MLflow serves the same directory
(`mlflow models serve --env-manager local`, its default settings).

Measured with wrk over loopback, each for SECONDS:
  single row   one connection, one row per request (dataframe_split): p50 and p99
  batch 1000   two connections (two cores), 1,000 rows per request: rows per second
and the serving process's resident memory (VmRSS, and its peak VmHWM) after the runs.

Usage: .venv/mlflow3/bin/python bench/serve_compare.py [--seconds 5] [--cairn target/release/cairn]
Needs wrk (apt-get install wrk) and the mlflow3 venv (scripts/test installs it).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "support"))
import wrk  # noqa: E402
from infra import free_port, wait_until  # noqa: E402

FEATURES = 10


def build_model(work):
    import mlflow.onnx
    import pandas as pd
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=2000, n_features=FEATURES, random_state=0)
    X = X.astype(np.float32)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    onnx_model = to_onnx(forest, X[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    columns = [f"x{i}" for i in range(FEATURES)]
    frame = pd.DataFrame(X[:5], columns=columns)
    path = work / "forest"
    mlflow.onnx.save_model(onnx_model, str(path), signature=infer_signature(frame, forest.predict(X[:5])))
    return path, columns, X


def body(columns, rows):
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows.tolist()}})


def measure(url, work, columns, X, seconds):
    one = wrk.script(work, "POST", "/invocations", body(columns, X[:1]))
    thousand = wrk.script(work, "POST", "/invocations", body(columns, X[:1000]))
    # Both answer the same thing to the same request before anything is timed.
    single = subprocess.run(wrk.command(url, one, seconds, 1, 1), capture_output=True, text=True, check=True)
    batch = subprocess.run(wrk.command(url, thousand, seconds, 2, 2), capture_output=True, text=True, check=True)
    ops1, p50, p99, failed1 = wrk.parse(single.stdout)
    ops_batch, _, batch_p99, failed_batch = wrk.parse(batch.stdout)
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "single_ops": ops1,
        "rows_per_s": ops_batch * 1000,
        "batch_p99_ms": batch_p99,
        "failed": failed1 + failed_batch,
    }


def memory(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def tree_rss(pid):
    """Resident MiB of a process and its children (mlflow serves from a uvicorn child)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            total += memory(p)[0]
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except FileNotFoundError:
            continue
        pids += [int(c) for c in children]
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--cairn", default=str(ROOT / "target" / "release" / "cairn"))
    args = parser.parse_args()
    if args.cairn == str(ROOT / "target" / "release" / "cairn"):
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "cairn"], cwd=ROOT, check=True)
    venv_bin = str(Path(sys.executable).parent)
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    library = next(str(p) for p in sorted(capi.iterdir()) if p.name.startswith("libonnxruntime.so"))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, columns, X = build_model(work)
        env = {**os.environ, "CAIRN_HOME": str(work / "registry"), "CAIRN_REGISTRY": str(work / "registry")}
        subprocess.run([args.cairn, "push", str(model_dir), "--model", "forest"], env=env, check=True, capture_output=True)
        subprocess.run([args.cairn, "alias", "set", "forest", "production", "1"], env=env, check=True, capture_output=True)

        cairn = subprocess.Popen(
            [args.cairn, "serve", "forest@production", "--port", "0", "--cache-dir", str(work / "cache")],
            env={**env, "ORT_DYLIB_PATH": library, "RUST_LOG": "warn"},
            stdout=subprocess.PIPE,
            text=True,
        )
        cairn_url = cairn.stdout.readline().split(" on ")[1].strip()
        port = free_port()
        mlflow = subprocess.Popen(
            [f"{venv_bin}/mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        mlflow_url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: requests.get(f"{mlflow_url}/ping", timeout=1).ok, "mlflow models serve", 120)
            request = body(columns, X[:20])
            answers = [
                requests.post(f"{u}/invocations", data=request, headers={"Content-Type": "application/json"}).json()
                for u in (cairn_url, mlflow_url)
            ]
            labels = [[p["output_label"] for p in a["predictions"]] for a in answers]
            assert labels[0] == labels[1], f"the two servers disagree: {labels}"
            results = {
                "cairn serve": measure(cairn_url, work, columns, X, args.seconds),
                "mlflow models serve": measure(mlflow_url, work, columns, X, args.seconds),
            }
            rss = {"cairn serve": memory(cairn.pid), "mlflow models serve": (tree_rss(mlflow.pid), None)}
        finally:
            cairn.terminate()
            mlflow.terminate()
            cairn.wait(timeout=10)
            mlflow.wait(timeout=30)

    c, m = results["cairn serve"], results["mlflow models serve"]
    print(f"RandomForest, 100 trees, {FEATURES} features; wrk {args.seconds} s per run, loopback\n")
    print("| server | single-row p50 ms | single-row p99 ms | single-row req/s | rows/s at batch 1,000 | batch p99 ms | RSS MiB (peak) | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        now, peak = rss[name]
        mem = f"{now} ({peak})" if peak else f"{now} (with its workers)"
        print(f"| {name} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['single_ops']:,.0f} | {r['rows_per_s']:,.0f} | {r['batch_p99_ms']:.1f} | {mem} | {r['failed']} |")
    print(f"\nrows/s at batch 1,000: {c['rows_per_s'] / m['rows_per_s']:.1f}x mlflow models serve (target >= 5x)")
    print(f"single-row p99: {m['p99_ms'] / c['p99_ms']:.1f}x lower than mlflow models serve (target >= 10x)")


if __name__ == "__main__":
    main()
