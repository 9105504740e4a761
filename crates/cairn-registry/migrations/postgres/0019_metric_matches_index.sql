-- A metric comparison in a run search matches only values that are numbers (a NaN is
-- stored with a placeholder value and `is_nan` set). With `is_nan` in the index
-- between the key and the value, `key = $1 AND is_nan = 0 AND value > $2` is one
-- range of the index, and the index holds all a match needs (the run id): an
-- index-only scan, instead of a visit to the table for each match to test `is_nan`.
DROP INDEX run_latest_metrics_by_key;
CREATE INDEX run_latest_metrics_by_key ON run_latest_metrics(key, is_nan, value) INCLUDE (run_id);
