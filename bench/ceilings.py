"""The engine alone: what PostgreSQL or SQLite does per second when it runs, on the same
data, the statements Cairn sends for one call, with no server around them. The
distance between a call's ops/s and its ceiling is what Cairn itself costs; a call at
its ceiling can only get faster by asking the engine for less.

PostgreSQL is driven by its own `pgbench` (8 clients, 2 threads, each transaction one
call's statements), SQLite by `examples/sqlite_alone.rs` (rusqlite, the driver Cairn
uses, with prepared statements kept: a writer at a time, as SQLite allows; one reader
per core, as reads run side by side in WAL mode; each value of a row read once, as
pgbench's clients receive every value). Writes are measured one call per
transaction, as a lone request is written; under load Cairn writes several requests'
metrics in one statement, which the engine alone does not.

Kept in step with the statements of `crates/cairn-registry` (named by each call's
function below): when those change, these change with them.
"""

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLIENTS = 8

# How a call's statements run, as Cairn runs them (`registry::db::sqlite_reads`): a write
# transaction; a read of one statement; a read of several on one snapshot, whose SQLite
# connections map the database file.
WRITE, LOOKUP, SNAPSHOT = "write", "lookup", "snapshot"
# A write call's statement that runs on its own before the transaction (a lookup).
READ = "READ "


def ceilings_of(engine, store, ctx, wanted, seconds, work):
    """{call: (ops/s, p50 ms, p99 ms, 0)} for the calls of `wanted` that have a ceiling;
    `store` is the PostgreSQL URL or the SQLite file Cairn runs on; `ctx` names the
    run, model and experiment the benchmark made."""
    calls = {
        "log-metric": log_metric,
        "log-batch": log_batch,
        "model-versions/create": register_version,
        "get-by-alias": get_by_alias,
        "runs/search 1%": lambda engine, ctx: run_search(engine, store, ctx, 0.989),
        "runs/search 50%": lambda engine, ctx: run_search(engine, store, ctx, 0.5),
    }
    measure = pgbench if engine == "postgres" else sqlite_alone
    got = {}
    for name in sorted(wanted & calls.keys()):
        statements, kind = calls[name](engine, ctx)
        got[name] = measure(store, statements, kind, seconds, work)
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
    return (lambda step: [insert_if_active(ctx, ["loss"], step)]), WRITE


def log_batch(engine, ctx):
    keys = [f"m{k}" for k in range(100)]
    return (lambda step: [insert_if_active(ctx, keys, step)]), WRITE


def registration_reads(ctx):
    """What a registration from `runs:/RUN/model` reads before it writes, one lookup each
    (`service::sources::register_from_source`): the run (`Tracking::run_info`), its
    files under `model/` (`Tracking::artifact_files`), its git tags and datasets
    (`Tracking::run_lineage`), and the sizes the registry already records for the
    files' blobs (`MetadataStore::recorded_sizes`)."""
    run, files = ctx["run_id"], f"{ctx['artifact_root']}/model"
    weights = hashlib.sha256(b"w" * 4096).hexdigest()  # bench/mlflow_compare.py's setup
    return [
        "SELECT r.id, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time,"
        f" r.lifecycle_stage, r.artifact_uri FROM runs r WHERE r.id = '{run}'",
        f"SELECT path, sha256, size FROM artifacts WHERE path > '{files}/' AND path < '{files}0' ORDER BY path",
        f"SELECT 't', key, value FROM run_tags WHERE run_id = '{run}' AND key IN ('mlflow.source.git.commit',"
        f" 'mlflow.source.git.branch', 'mlflow.source.git.repoURL') UNION ALL SELECT 'd', name, digest"
        f" FROM run_inputs WHERE run_id = '{run}'",
        "SELECT v.column1, (SELECT f.size FROM version_files f WHERE f.sha256 = v.column1 LIMIT 1),"
        " (SELECT e.size FROM version_environment e WHERE e.sha256 = v.column1 LIMIT 1),"
        f" (SELECT a.size FROM artifacts a WHERE a.sha256 = v.column1 LIMIT 1) FROM (VALUES ('{weights}')) AS v",
    ]


def register_version(engine, ctx):
    """A registration: its lookups (`registration_reads`, each on its own, before the
    transaction), then `MetadataStore::insert_version` (store/versions.rs) and
    `audit::append` in one transaction, for a version of one 4 KiB file. The audit
    entry's hash is made up (the engine's work is the same)."""
    reads = [READ + sql for sql in registration_reads(ctx)]
    blob = "5" * 64
    model = ctx["model"]
    after = ('{"digest":"' + "7" * 64 + '","external":false,"files":1,"size":4096,'
             f'"source":"{ctx["source"]}","run_id":"{ctx["run_id"]}","description":"","tags":{{}}}}')
    version_columns = ("model_id, number, digest, description, file_count, size, created_by, created_at,"
                       " updated_at, source, run_id, run_link, logged_model_id, external")
    version_values = f"'{'7' * 64}', '', 1, 4096, 'bench', 0, 0, '{ctx['source']}', '{ctx['run_id']}', '', NULL, 0"
    audit_columns = "seq, at, actor, action, model, target, before, after, prev_hash, hash, format, token"
    # An MLflow registration's model must exist: its counter is bumped, never created.
    bump_model = (f"UPDATE models SET next_version = next_version + 1, updated_at = 0"
                  f" WHERE name = '{model}' RETURNING id AS model_id, next_version - 1 AS number")
    if engine == "postgres":
        # pgbench's \gset carries a statement's answer into the next ones.
        def statements(step):
            made_up = f"md5({step}::text) || md5(:seq::text)"
            return reads + [
                "SELECT runs FROM gc_state WHERE id = 1 FOR SHARE;",
                f"SELECT sha256 FROM blob_tombstones WHERE sha256 IN ('{blob}');",
                bump_model + " \\gset",
                f"INSERT INTO versions ({version_columns}) VALUES (:model_id, :number, {version_values})"
                " RETURNING id AS version_id \\gset",
                f"INSERT INTO version_files (version_id, path, size, sha256) VALUES (:version_id, 'weights.bin', 4096, '{blob}');",
                "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash AS prev \\gset",
                f"WITH head AS (UPDATE audit_head SET hash = {made_up} WHERE id = 1)"
                f" INSERT INTO audit_log ({audit_columns}) VALUES (:seq, 0, 'bench', 'version.create', '{model}',"
                f" '{model}@' || :number, NULL, '{after}', ':prev', {made_up}, 2, NULL);",
            ]
    else:
        # The shell has no variables: each statement finds what the one before wrote.
        def statements(step):
            return reads + [
                f"SELECT sha256 FROM blob_tombstones WHERE sha256 IN ('{blob}');",
                bump_model + ";",
                f"INSERT INTO versions ({version_columns}) SELECT id, next_version - 1, {version_values}"
                f" FROM models WHERE name = '{model}' RETURNING id;",
                f"INSERT INTO version_files (version_id, path, size, sha256) VALUES (last_insert_rowid(), 'weights.bin', 4096, '{blob}');",
                "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash;",
                f"INSERT INTO audit_log ({audit_columns}) SELECT seq, 0, 'bench', 'version.create', '{model}',"
                f" '{model}@' || {step}, NULL, '{after}', hash, lower(hex(randomblob(32))), 2, NULL FROM audit_head WHERE id = 1;",
                "UPDATE audit_head SET hash = (SELECT hash FROM audit_log WHERE seq = audit_head.seq) WHERE id = 1;",
            ]
    return statements, WRITE


def get_by_alias(engine, ctx):
    """`Registry::cached_read` (service/mod.rs) through `audit_head` (audit.rs): a
    repeated `models:/NAME@ALIAS` is answered from the read cache once the audit head
    shows the registry unchanged; that look at the head is the engine's whole part."""
    return (lambda _step: ["SELECT seq, hash FROM audit_head WHERE id = 1;"]), LOOKUP


def run_search(engine, store, ctx, threshold):
    """`Tracking::search_runs` for `metrics.acc > threshold`, 100 runs a page."""
    from search_sql import search_statements

    statements = search_statements(engine, str(store), ctx["search_exp"], threshold, 100)
    return (lambda _step: statements), SNAPSHOT


def pgbench(url, statements, kind, seconds, work):
    """ops/s and p50/p99 of `statements` (a function of a distinct step number) as one
    transaction, from 8 pgbench clients."""
    script = work / f"pgbench-{uuid.uuid4().hex}.sql"
    # pgbench substitutes :step per transaction: every call writes distinct values.
    lines = [s.replace("\n", " ") for s in statements(":step")]
    # A lookup is its own statement, outside the transaction, as Cairn reads through its pool.
    reads = "".join(s[len(READ):] + ";\n" for s in lines if s.startswith(READ))
    body = "\n".join(s for s in lines if not s.startswith(READ))
    wrapped = (f"\\set step random(1, 1000000000000)\n{reads}BEGIN;\n{body}\nCOMMIT;\n" if kind == WRITE
               else body + "\n")
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


def sqlite_alone(path, statements, kind, seconds, work):
    """ops/s and p50/p99 of `statements` on SQLite with nothing around it but prepared
    statements (`crates/cairn-registry/examples/sqlite_alone.rs`): writes on one
    connection with the settings of Cairn's writer, each call its own transaction;
    reads on one connection per core, side by side, a snapshot's in one read
    transaction on connections that map the file, as Cairn's; every value of every row
    read once, in place."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn-registry", "--example", "sqlite_alone"],
                   cwd=ROOT, check=True)
    text = "\n".join(s.replace("\n", " ") for s in statements(":step")) + "\n"
    out = subprocess.run(
        [str(ROOT / "target" / "release" / "examples" / "sqlite_alone"), str(path), str(seconds),
         str(os.cpu_count()), kind],
        input=text, capture_output=True, text=True, check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), 0
