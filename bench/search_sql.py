"""The statements `tracking::run_search` sends for the benchmark's run search
(`metrics.acc > X` in one experiment, newest first, a page of 100), for the engines
alone to run (`bench/ceilings.py`). Kept in step with `crates/cairn-registry/src/
tracking/run_search.rs` (the plan and the probe) and `tracking/rows.rs` (the details).
"""

import json
import sqlite3

RUN_COLUMNS = ("r.id, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time,"
               " r.lifecycle_stage, r.artifact_uri")

# rows.rs RUN_DETAIL_JSON: PostgreSQL's page carries each run's details.
RUN_DETAIL_JSON = """
    (SELECT json_agg(json_build_array(key, value::text, is_nan, timestamp, step) ORDER BY key)::text
       FROM run_latest_metrics WHERE run_id = r.id),
    (SELECT json_agg(json_build_array(key, value))::text FROM run_params WHERE run_id = r.id),
    (SELECT json_agg(json_build_array(key, value))::text FROM run_tags WHERE run_id = r.id),
    (SELECT json_agg(json_build_array(name, digest, source_type, source, schema, profile, context, tags))::text
       FROM run_inputs WHERE run_id = r.id),
    (SELECT json_agg(json_build_array(model_id, step))::text FROM
       (SELECT model_id, step FROM run_outputs WHERE run_id = r.id
        UNION ALL SELECT model_id, NULL FROM run_model_inputs WHERE run_id = r.id) o)"""

WALK_FROM_MATCHES_PER_ROW = 10


def matching(threshold, select="SELECT run_id FROM ", correlation=""):
    return (f"{select}run_latest_metrics WHERE {correlation}key = 'acc' AND is_nan = 0"
            f" AND value > {threshold}")


def probe(threshold, rows):
    rows_of = matching(threshold, "SELECT 1 FROM ")
    return f"SELECT COUNT(*) FROM ({rows_of} LIMIT {rows * WALK_FROM_MATCHES_PER_ROW} OFFSET 0) m"


def page(engine, experiment, threshold, walk, limit):
    columns = RUN_COLUMNS + ("," + RUN_DETAIL_JSON if engine == "postgres" else "")
    if walk:
        source = "runs r"
        selected = " AND EXISTS (" + matching(threshold, "SELECT 1 FROM ", "run_id = r.id AND ") + ")"
    else:
        join = (") d CROSS JOIN runs r ON r.id = d.run_id" if engine == "sqlite"
                else ") d CROSS JOIN LATERAL (SELECT * FROM runs WHERE id = d.run_id OFFSET 0) r")
        source = "(" + matching(threshold) + join
        selected = ""
    return (f"SELECT {columns} FROM {source} WHERE r.experiment_id IN ({experiment})"
            f" AND r.lifecycle_stage = 'active'{selected}"
            f" ORDER BY r.start_time DESC, r.id ASC LIMIT {limit + 1} OFFSET 0")


def sqlite_details(ids):
    """rows.rs RunDetailQueries: SQLite completes the page with five more statements,
    each joining the page's run ids (one JSON array, `json_each`) to a table's key; each
    row names its run by its place in the array."""
    page = "'" + json.dumps(ids).replace("'", "''") + "'"

    def of_the_page(table):
        return f" FROM json_each({page}) p CROSS JOIN {table} d ON d.run_id = p.value"

    return [
        "SELECT p.key, d.key, d.value, d.is_nan, d.timestamp, d.step" + of_the_page("run_latest_metrics"),
        "SELECT p.key, d.key, d.value" + of_the_page("run_params"),
        "SELECT p.key, d.key, d.value" + of_the_page("run_tags"),
        "SELECT p.key, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, d.context, d.tags"
        + of_the_page("run_inputs"),
        "SELECT p.key, d.model_id, d.step" + of_the_page("run_outputs")
        + " UNION ALL SELECT p.key, d.model_id, NULL" + of_the_page("run_model_inputs"),
    ]


def search_statements(engine, store, experiment, threshold, limit):
    """The statements of one search, as `run_search` chooses them on `store` (the
    PostgreSQL URL or the SQLite file); the probe decides the plan as Cairn's does."""
    rows = limit + 1
    count = query(engine, store, probe(threshold, rows))[0][0]
    walk = count >= rows * WALK_FROM_MATCHES_PER_ROW
    main = page(engine, experiment, threshold, walk, limit)
    statements = [probe(threshold, rows) + ";", main + ";"]
    if engine == "sqlite":
        ids = [row[0] for row in query(engine, store, main)]
        statements += [s + ";" for s in sqlite_details(ids)]
    return statements


def query(engine, store, sql):
    if engine == "sqlite":
        with sqlite3.connect(store) as db:
            return db.execute(sql).fetchall()
    import psycopg2

    with psycopg2.connect(store) as db, db.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()
