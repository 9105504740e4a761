#!/usr/bin/env python3
"""How fast SQLite alone does the work of `log-batch`, `model-versions/create` and
`runs/search` on this machine: the ceiling of those calls on the embedded store,
whatever the server around SQLite does.

    python3 bench/sqlite_ceiling.py [--rows 400000] [--versions 5000] [--searches 300]

Builds Cairn's schema from its own SQLite migrations in a temporary file, with the
server's settings (WAL, synchronous=NORMAL, foreign keys on), then:

- writes metric values the way `registry::metric_writer` does under load: one
  INSERT … SELECT of 2,000 rows (twenty `log-batch` requests of 100 metrics) per
  statement, the run checked active inside it, the latest-value trigger firing per row;
- registers versions with the statements of `MetadataStore::insert_version`, one
  transaction each: tombstone check, model counter, version row, its file, and the
  audit entry chained to the one before;
- searches 10,000 runs with one metric each for `metrics.acc > 0.99` with the
  statements `Tracking::search_runs` sends (the matching runs, then their metrics,
  params, tags, inputs and outputs), on one connection; reads run side by side on
  SQLite, so the machine's cores multiply it.

Prints rows/s, registrations/s and searches/s, and the requests/s they allow.
"""

import argparse
import hashlib
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent.parent / "crates/cairn-registry/migrations/sqlite"
ROWS_PER_STATEMENT = 2000
METRICS_PER_REQUEST = 100


def open_store(work):
    db = sqlite3.connect(Path(work) / "cairn.db", isolation_level=None)
    db.executescript("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        db.executescript(migration.read_text())
    return db


def metric_values(rows):
    with tempfile.TemporaryDirectory(prefix="cairn-sqlite-ceiling-") as work:
        db = open_store(work)
        run = uuid.uuid4().hex
        db.execute(
            "INSERT INTO runs (id, experiment_id, name, user_id, status, start_time, artifact_uri)"
            " VALUES (?, 0, 'bench', 'bench', 'RUNNING', 0, 'mlflow-artifacts:/0/bench')",
            (run,),
        )
        values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * ROWS_PER_STATEMENT)
        insert = (
            "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step)"
            f" SELECT * FROM (VALUES {values}) AS v WHERE EXISTS"
            " (SELECT 1 FROM runs r WHERE r.id = v.column1 AND r.lifecycle_stage = 'active')"
            " ON CONFLICT DO NOTHING"
        )
        now = int(time.time() * 1000)
        statements = rows // ROWS_PER_STATEMENT
        step = 0
        elapsed = 0.0
        for _ in range(statements):
            bound = []
            for _ in range(ROWS_PER_STATEMENT // METRICS_PER_REQUEST):
                step += 1
                for k in range(METRICS_PER_REQUEST):
                    bound += [run, f"m{k}", k * 0.5, 0, now, step]
            t0 = time.perf_counter()
            db.execute(insert, bound)
            elapsed += time.perf_counter() - t0
        rows = statements * ROWS_PER_STATEMENT
        stored = db.execute("SELECT count(*) FROM run_metrics").fetchone()[0]
        assert stored == rows, f"{stored} rows stored of {rows}"
    rate = rows / elapsed
    print(f"metric values: {rows} in {elapsed:.2f} s of INSERTs, {rate:,.0f} rows/s"
          f" = at most {rate / METRICS_PER_REQUEST:,.0f} log-batch(100) requests/s")


def registrations(count):
    with tempfile.TemporaryDirectory(prefix="cairn-sqlite-ceiling-") as work:
        db = open_store(work)
        blob = hashlib.sha256(b"weights").hexdigest()
        now = int(time.time() * 1000)
        t0 = time.perf_counter()
        for i in range(count):
            db.execute("BEGIN IMMEDIATE")
            db.execute("SELECT sha256 FROM blob_tombstones WHERE sha256 IN (?)", (blob,)).fetchall()
            db.execute("INSERT INTO models (name, created_by, created_at, updated_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (name) DO NOTHING", ("bench", "bench", now, now))
            model_id, number = db.execute(
                "UPDATE models SET next_version = next_version + 1, updated_at = ?"
                " WHERE name = ? RETURNING id, next_version - 1", (now, "bench")).fetchone()
            version_id = db.execute(
                "INSERT INTO versions (model_id, number, digest, description, file_count, size, created_by,"
                " created_at, updated_at, source, run_id, run_link, logged_model_id)"
                " VALUES (?, ?, ?, '', 1, 4096, 'bench', ?, ?, 'runs:/r/model', 'r', '', NULL) RETURNING id",
                (model_id, number, hashlib.sha256(str(i).encode()).hexdigest(), now, now)).fetchone()[0]
            db.execute("INSERT INTO version_files (version_id, path, size, sha256) VALUES (?, 'weights.bin', 4096, ?)",
                       (version_id, blob))
            seq, prev = db.execute(
                "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash").fetchone()
            after = f'{{"digest":"{blob}","files":1,"size":4096,"source":"runs:/r/model","run_id":"r"}}'
            entry = hashlib.sha256(f"{seq}{now}bench version.create bench@{number}{after}{prev}".encode()).hexdigest()
            db.execute("INSERT INTO audit_log (seq, at, actor, action, model, target, before, after, prev_hash, hash)"
                       " VALUES (?, ?, 'bench', 'version.create', 'bench', ?, NULL, ?, ?, ?)",
                       (seq, now, f"bench@{number}", after, prev, entry))
            db.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (entry,))
            db.execute("COMMIT")
        elapsed = time.perf_counter() - t0
    print(f"registrations: {count} in {elapsed:.2f} s, {count / elapsed:,.0f} per second"
          " = at most that many model-versions/create requests/s")


def run_searches(count, runs=10_000):
    with tempfile.TemporaryDirectory(prefix="cairn-sqlite-ceiling-") as work:
        db = open_store(work)
        db.execute("BEGIN")
        for i in range(runs):
            run = uuid.uuid4().hex
            db.execute("INSERT INTO runs (id, experiment_id, name, user_id, status, start_time, artifact_uri)"
                       " VALUES (?, 0, ?, 'bench', 'RUNNING', ?, 'mlflow-artifacts:/0/x')", (run, f"run-{i}", i))
            db.execute("INSERT INTO run_tags (run_id, key, value) VALUES (?, 'mlflow.runName', ?)", (run, f"run-{i}"))
            db.execute("INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) VALUES (?, 'acc', ?, 0, 0, 0)",
                       (run, (i % 1000) / 1000))
        db.execute("COMMIT")
        t0 = time.perf_counter()
        for _ in range(count):
            ids = [r[0] for r in db.execute(
                "SELECT r.id, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time,"
                " r.lifecycle_stage, r.artifact_uri FROM (SELECT run_id FROM run_latest_metrics"
                " WHERE is_nan = 0 AND key = ? AND value > ?) d CROSS JOIN runs r ON r.id = d.run_id"
                " WHERE r.experiment_id IN (?) AND r.lifecycle_stage = 'active'"
                " ORDER BY r.start_time DESC, r.id ASC LIMIT ? OFFSET ?", ("acc", 0.99, 0, 101, 0))]
            marks = ", ".join("?" * len(ids))
            for sql in ("SELECT run_id, key, value, is_nan, timestamp, step FROM run_latest_metrics"
                        f" WHERE run_id IN ({marks}) ORDER BY key",
                        f"SELECT run_id, key, value FROM run_params WHERE run_id IN ({marks})",
                        f"SELECT run_id, key, value FROM run_tags WHERE run_id IN ({marks})",
                        "SELECT run_id, name, digest, source_type, source, schema, profile, context"
                        f" FROM run_inputs WHERE run_id IN ({marks})",
                        f"SELECT run_id, model_id, step FROM run_outputs WHERE run_id IN ({marks})"):
                db.execute(sql, ids).fetchall()
        elapsed = time.perf_counter() - t0
    print(f"runs/search: {count} searches ({len(ids)} runs each) in {elapsed:.2f} s,"
          f" {count / elapsed:,.0f} per second on one connection")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--versions", type=int, default=5_000)
    ap.add_argument("--searches", type=int, default=300)
    args = ap.parse_args()
    print(f"SQLite {sqlite3.sqlite_version}, one connection, no server")
    metric_values(args.rows)
    registrations(args.versions)
    run_searches(args.searches)


if __name__ == "__main__":
    main()
