#!/usr/bin/env python3
"""The web UI at scale: one model with 100,000 versions and 1,000,000 metric values over
its experiment's runs; the latency of the pages and the versions API (sequential
requests over loopback, so client-seen latency bounds the server's time), and how long
headless Chromium takes to draw a run's chart of 100,000 points.

    python bench/ui.py [--engine sqlite|postgres] [--versions 100000] [--requests 200]
                       [--keep DIR]

`--keep DIR` (SQLite) seeds DIR once and reuses it on later runs.

Needs a release build (cargo build --release -p cairn), the UI suite's venv (.venv/ui:
requests, selenium) and Debian's chromium + chromium-driver (scripts/test installs all).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
CAIRN = os.environ.get("CAIRN_BIN", str(ROOT / "target" / "release" / "cairn"))
POSTGRES = os.environ.get("CAIRN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
MODEL = "big"
RUNS = 10
POINTS = 100_000  # per run: RUNS × POINTS metric values


def start_server(args, work):
    if args.keep:
        return start(["--data", str(Path(args.keep) / "registry")]) + (None,)
    if args.engine == "postgres":
        db = f"cairn_bench_{uuid.uuid4().hex[:8]}"
        subprocess.run(["psql", POSTGRES, "-q", "-c", f"CREATE DATABASE {db}"], check=True)
        url = POSTGRES.rsplit("/", 1)[0] + f"/{db}"
        store = ["--registry", url, "--artifacts", str(work / "blobs")]
    else:
        db, store = None, ["--data", str(work / "registry")]
    return start(store) + (db,)


def start(store):
    proc = subprocess.Popen([CAIRN, "server", "--port", "0", *store], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "RUST_LOG": "warn"})
    line = proc.stdout.readline()
    base = next(w for w in line.split() if w.startswith("http://"))
    return proc, base


def seed_versions(base, count):
    session = requests.Session()
    blob = b"weights" * 100
    import hashlib
    digest = hashlib.sha256(blob).hexdigest()
    session.put(f"{base}/api/v1/blobs/sha256/{digest}", data=blob, timeout=30).raise_for_status()
    local = __import__("threading").local()

    def create(i):
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        body = {
            "files": [{"path": "model.bin", "size": len(blob), "sha256": f"sha256:{digest}"}],
            "metrics": {"auc": random.random(), "loss": random.random(), "f1": random.random()},
            "params": {"lr": str(random.choice([0.1, 0.01, 0.001]))},
        }
        r = s.post(f"{base}/api/v1/models/{MODEL}/versions", json=body, timeout=60)
        assert r.status_code in (200, 201), r.text

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    return time.monotonic() - started


def seed_runs(base):
    api = f"{base}/api/2.0/mlflow"
    experiment = requests.post(f"{api}/experiments/create", json={"name": "big-training"},
                               timeout=10).json()["experiment_id"]
    runs = []
    for i in range(RUNS):
        r = requests.post(f"{api}/runs/create", json={"experiment_id": experiment, "run_name": f"run-{i}"},
                          timeout=10).json()
        runs.append(r["run"]["info"]["run_id"])
    batches = [(run, start) for run in runs for start in range(0, POINTS, 1000)]
    local = __import__("threading").local()

    def log(batch):
        run, start = batch
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        metrics = [{"key": "loss", "value": 1.0 / (1 + step / 1000) + random.random() / 50,
                    "timestamp": 1_700_000_000_000 + step, "step": step}
                   for step in range(start, start + 1000)]
        r = s.post(f"{api}/runs/log-batch", json={"run_id": run, "metrics": metrics}, timeout=60)
        assert r.ok, r.text

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(log, batches))
    return experiment, runs, time.monotonic() - started


def latencies(session, urls):
    times = []
    for url in urls:
        started = time.perf_counter()
        r = session.get(url, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def chart_render(base, run, rounds=3):
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--window-size=1360,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    results = []
    try:
        for _ in range(rounds):
            driver.get(f"{base}/runs/{run}")
            chart = driver.find_element(By.CSS_SELECTOR, ".chart[data-metric=loss]")
            WebDriverWait(driver, 30).until(lambda _: chart.get_attribute("data-rendered-ms"))
            assert chart.get_attribute("data-points") == str(POINTS)
            since_navigation = driver.execute_script("return performance.now()")
            results.append((int(chart.get_attribute("data-rendered-ms")), since_navigation))
    finally:
        driver.quit()
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", help="a directory to seed once and reuse (SQLite)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-ui-bench-"))
    seeded = Path(args.keep) / "seeded.json" if args.keep else None
    proc, base, db = start_server(args, work)
    try:
        if seeded and seeded.exists():
            experiment, runs = json.loads(seeded.read_text())
        else:
            took = seed_versions(base, args.versions)
            print(f"seeded {args.versions} versions in {took:.0f} s", flush=True)
            experiment, runs, took = seed_runs(base)
            print(f"seeded {RUNS * POINTS} metric values in {took:.0f} s", flush=True)
            if seeded:
                seeded.write_text(json.dumps([experiment, runs]))
        n, count = args.requests, args.versions
        pages = count // 50
        pick = lambda: random.randint(1, count)  # noqa: E731
        cases = [
            ("model page (newest first)", [f"{base}/models/{MODEL}"] * n),
            ("model page, random page", [f"{base}/models/{MODEL}?page={random.randint(1, pages)}" for _ in range(n)]),
            ("model page sorted by a metric", [f"{base}/models/{MODEL}?sort=metric:auc" for _ in range(n)]),
            ("… sorted by a metric, random page",
             [f"{base}/models/{MODEL}?sort=metric:auc&order=asc&page={random.randint(1, pages)}" for _ in range(n)]),
            ("versions API, 100 from a random point",
             [f"{base}/api/v1/models/{MODEL}/versions?after={pick()}&limit=100" for _ in range(n)]),
            ("compare page, 5 random versions",
             [f"{base}/compare?" + "&".join(f"v={MODEL}@{pick()}" for _ in range(5)) for _ in range(n)]),
            ("version page, random version", [f"{base}/models/{MODEL}/versions/{pick()}" for _ in range(n)]),
            ("models list", [f"{base}/"] * n),
            ("audit log, newest page", [f"{base}/audit"] * n),
            ("experiment's runs", [f"{base}/experiments/{experiment}"] * n),
            ("a run's 100,000-point metric (JSON)",
             [f"{base}/runs/{runs[0]}/metric-history?key=loss"] * max(10, n // 10)),
        ]
        session = requests.Session()
        print(f"\nengine: {args.engine}; {count} versions of one model, {RUNS * POINTS} metric values; "
              f"{n} sequential requests each (ms)\n")
        print(f"| {'request':<42} | {'p50':>7} | {'p99':>7} |")
        print(f"|{'-' * 44}|{'-' * 9}|{'-' * 9}|")
        for name, urls in cases:
            latencies(session, urls[:3])  # warm
            p50, p99 = latencies(session, urls)
            print(f"| {name:<42} | {p50:7.1f} | {p99:7.1f} |", flush=True)
        rendered = chart_render(base, runs[0])
        print("\nchart of 100,000 points in headless Chromium (ms): "
              + ", ".join(f"{drawn} fetched+drawn / {total:.0f} since navigation" for drawn, total in rendered))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if db:
            subprocess.run(["psql", POSTGRES, "-q", "-c", f"DROP DATABASE {db} WITH (FORCE)"], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
