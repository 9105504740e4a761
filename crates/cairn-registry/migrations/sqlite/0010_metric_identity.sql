-- A logged metric value is identified, as MLflow identifies it, by its run, key,
-- timestamp, step, value and NaN flag: the same value logged twice (a retried request)
-- is kept once. Keyed by that identity and clustered on it (WITHOUT ROWID), the table
-- is its own history index: one B-tree write per value instead of a row and an index
-- entry.
CREATE TABLE run_metrics_by_identity (
    run_id    TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_id, key, timestamp, step, value, is_nan)
) WITHOUT ROWID;
INSERT OR IGNORE INTO run_metrics_by_identity (run_id, key, value, is_nan, timestamp, step)
    SELECT run_id, key, value, is_nan, timestamp, step FROM run_metrics;
-- Drops the old history index and latest-value trigger with the table.
DROP TABLE run_metrics;
ALTER TABLE run_metrics_by_identity RENAME TO run_metrics;

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
