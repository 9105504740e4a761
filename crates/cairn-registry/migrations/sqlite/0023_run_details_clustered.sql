-- A run's latest metric values, params and tags are read a run at a time (a page of
-- runs with their details, a run). Clustered on their key (run, key) WITHOUT ROWID, a
-- run's values are one range of one B-tree, instead of a range of the key's index and
-- a look-up in the table for each value; a write is one B-tree insert instead of two.
-- The latest-value trigger names run_latest_metrics: it goes while the table is
-- rebuilt and comes back unchanged.
DROP TRIGGER run_metrics_keep_latest;

CREATE TABLE run_latest_metrics_clustered (
    run_id    TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
INSERT INTO run_latest_metrics_clustered (run_id, key, value, is_nan, timestamp, step) SELECT run_id, key, value, is_nan, timestamp, step FROM run_latest_metrics;
DROP TABLE run_latest_metrics;
ALTER TABLE run_latest_metrics_clustered RENAME TO run_latest_metrics;
CREATE INDEX run_latest_metrics_by_key ON run_latest_metrics(key, value);

CREATE TABLE run_params_clustered (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
INSERT INTO run_params_clustered (run_id, key, value) SELECT run_id, key, value FROM run_params;
DROP TABLE run_params;
ALTER TABLE run_params_clustered RENAME TO run_params;
CREATE INDEX run_params_by_key ON run_params(key, value);

CREATE TABLE run_tags_clustered (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
INSERT INTO run_tags_clustered (run_id, key, value) SELECT run_id, key, value FROM run_tags;
DROP TABLE run_tags;
ALTER TABLE run_tags_clustered RENAME TO run_tags;
CREATE INDEX run_tags_by_key ON run_tags(key, value);

CREATE TRIGGER run_metrics_keep_latest AFTER INSERT ON run_metrics
BEGIN
    INSERT INTO run_latest_metrics (run_id, key, value, is_nan, timestamp, step)
    VALUES (NEW.run_id, NEW.key, NEW.value, NEW.is_nan, NEW.timestamp, NEW.step)
    ON CONFLICT (run_id, key) DO UPDATE SET
        value = excluded.value, is_nan = excluded.is_nan,
        timestamp = excluded.timestamp, step = excluded.step
    WHERE (excluded.step, excluded.timestamp, excluded.value) >=
          (run_latest_metrics.step, run_latest_metrics.timestamp, run_latest_metrics.value);
END;
