"""The engine alone: what PostgreSQL or SQLite does per second when it runs, on the same
data, the statements Cairn sends for one call, with no server around them. The
distance between a call's ops/s and its ceiling is what Cairn itself costs; a call at
its ceiling can only get faster by asking the engine for less.

PostgreSQL is driven by its own `pgbench` (8 clients, 2 threads, each transaction one
call's statements), SQLite by its own `sqlite3` shell (a writer at a time, as SQLite
allows; one reader per core, as reads run side by side in WAL mode), so no client
library's overhead is counted against the engine.

Kept in step with the statements of `crates/cairn-registry` (named by each call's
function below): when those change, these change with them.
"""

import os
import subprocess
import time
import uuid

CLIENTS = 8
SEARCH_COLUMNS = ("r.id, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time,"
                  " r.lifecycle_stage, r.artifact_uri")


def ceilings_of(engine, store, ctx, wanted, seconds, work):
    """{call: (ops/s, p50 ms, p99 ms, 0)} for the calls of `wanted` that have a ceiling;
    `store` is the PostgreSQL URL or the SQLite file Cairn ran on; `ctx` names the
    run, model and experiment the benchmark made."""
    calls = {
        "log-metric": log_metric,
        "log-batch": log_batch,
        "runs/search 1%": lambda engine, ctx: run_search(engine, ctx, 0.989),
        "runs/search 50%": lambda engine, ctx: run_search(engine, ctx, 0.5),
    }
    measure = pgbench if engine == "postgres" else sqlite_shell
    got = {}
    for name in sorted(wanted & calls.keys()):
        statements, writes = calls[name](engine, ctx)
        got[name] = measure(store, statements, writes, seconds, work)
    return got


def metric_rows(ctx, keys, step):
    """`VALUES` rows of `keys` at `step` for the benchmark's run, as
    `metric_writer::push_metric_values` writes them."""
    now = int(time.time() * 1000)
    return ", ".join(f"('{ctx['run_id']}', '{k}', {n * 0.5}, 0, {now}, {step})" for n, k in enumerate(keys))


def insert_if_active(ctx, keys, step):
    """`metric_writer::insert_if_active`: the run checked active inside the statement."""
    return ("INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) SELECT * FROM (VALUES "
            f"{metric_rows(ctx, keys, step)}) AS v WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = v.column1"
            " AND r.lifecycle_stage = 'active') ON CONFLICT DO NOTHING;")


def log_metric(engine, ctx):
    return (lambda step: [insert_if_active(ctx, ["loss"], step)]), True


def log_batch(engine, ctx):
    keys = [f"m{k}" for k in range(100)]
    return (lambda step: [insert_if_active(ctx, keys, step)]), True


def run_search(engine, ctx, threshold):
    """`Tracking::search_runs` for `metrics.acc > threshold`, 100 runs a page."""
    from search_sql import search_statements

    return (lambda _step: search_statements(engine, ctx["search_exp"], threshold, 100)), False


def pgbench(url, statements, writes, seconds, work):
    """ops/s and p50/p99 of `statements` (a function of a distinct step number) as one
    transaction, from 8 pgbench clients."""
    script = work / f"pgbench-{uuid.uuid4().hex}.sql"
    # pgbench substitutes :step per transaction: every call writes distinct values.
    body = "\n".join(s.replace("\n", " ") for s in statements(":step"))
    wrapped = f"\\set step random(1, 1000000000000)\nBEGIN;\n{body}\nCOMMIT;\n" if writes else body + "\n"
    script.write_text(wrapped)
    prefix = work / f"pgbench-log-{uuid.uuid4().hex}"
    out = subprocess.run(
        ["pgbench", "-n", "-c", str(CLIENTS), "-j", "2", "-T", str(int(seconds)), "-f", str(script),
         "--log", f"--log-prefix={prefix}", url],
        capture_output=True, text=True, check=True, cwd=work,
    ).stdout
    tps = next(float(line.split()[2]) for line in out.splitlines() if line.startswith("tps ="))
    latencies = []
    for log in work.glob(f"{prefix.name}*"):
        latencies += [int(line.split()[2]) / 1000 for line in log.read_text().splitlines()]
        log.unlink()
    script.unlink()
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return tps, pct(0.5), pct(0.99), 0


def sqlite_shell(path, statements, writes, seconds, work):
    """ops/s of `statements` in the `sqlite3` shell with the server's settings: writes
    in one shell, each call its own transaction; reads in one shell per core."""
    shells = 1 if writes else os.cpu_count()
    # Enough calls to take about `seconds`, found by timing a first batch.
    probe = _sqlite_calls(path, statements, writes, 20, 1, work, first_step=1)
    count = max(20, int(seconds / max(probe / 20, 1e-6)))
    elapsed = _sqlite_calls(path, statements, writes, count, shells, work, first_step=100)
    return count * shells / elapsed, None, None, 0


def _sqlite_calls(path, statements, writes, count, shells, work, first_step):
    scripts = []
    for shell in range(shells):
        lines = [".output /dev/null", "PRAGMA synchronous = NORMAL;", "PRAGMA busy_timeout = 5000;"]
        for i in range(count):
            step = first_step + shell * 10**9 + i
            body = statements(step)
            lines += ["BEGIN IMMEDIATE;", *body, "COMMIT;"] if writes else body
        script = work / f"sqlite-{uuid.uuid4().hex}.sql"
        script.write_text("\n".join(lines) + "\n")
        scripts.append(script)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["sqlite3", str(path)], stdin=open(s), stdout=subprocess.DEVNULL) for s in scripts]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("sqlite3 failed")
    elapsed = time.perf_counter() - t0
    for s in scripts:
        s.unlink()
    return elapsed
