-- A logged metric value is identified, as MLflow identifies it, by its run, key,
-- timestamp, step, value and NaN flag: the same value logged twice (a retried request)
-- is kept once. The primary key on that identity also serves metric history (run, key,
-- then time order), so the separate history index goes.
DELETE FROM run_metrics a USING run_metrics b
WHERE a.ctid > b.ctid
  AND a.run_id = b.run_id AND a.key = b.key AND a.timestamp = b.timestamp
  AND a.step = b.step AND a.value = b.value AND a.is_nan = b.is_nan;
ALTER TABLE run_metrics ADD PRIMARY KEY (run_id, key, timestamp, step, value, is_nan);
DROP INDEX run_metrics_history;
