-- run_latest_metrics follows run_metrics inside the inserting statement itself, so
-- logging a metric is one atomic INSERT (no explicit transaction, no second statement).
-- The newest value per key is the one with the largest (step, timestamp, value).
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
