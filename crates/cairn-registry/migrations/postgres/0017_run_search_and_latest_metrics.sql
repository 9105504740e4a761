-- An experiment's runs newest first, in exactly the order a run search returns them
-- (start time descending, then id): a search whose filter matches many runs walks
-- this index and stops at its page, instead of sorting every match.
CREATE INDEX runs_newest_first ON runs(experiment_id, start_time DESC, id);
DROP INDEX runs_by_experiment;

-- The newest value per key is kept once per INSERT statement instead of once per row:
-- a statement of 100 values (a log-batch request; many requests under load, batched)
-- upserts each of its (run, key) pairs once, from the statement's own rows, instead of
-- running the trigger function 100 times. Same rule as before: the largest
-- (step, timestamp, value) wins, and a later insert wins a tie.
CREATE FUNCTION run_metrics_keep_latest_of_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_latest_metrics AS l (run_id, key, value, is_nan, timestamp, step)
    SELECT DISTINCT ON (run_id, key) run_id, key, value, is_nan, timestamp, step FROM logged
    ORDER BY run_id, key, step DESC, timestamp DESC, value DESC
    ON CONFLICT (run_id, key) DO UPDATE SET
        value = excluded.value, is_nan = excluded.is_nan,
        timestamp = excluded.timestamp, step = excluded.step
    WHERE (excluded.step, excluded.timestamp, excluded.value) >= (l.step, l.timestamp, l.value);
    RETURN NULL;
END;
$$;
DROP TRIGGER run_metrics_keep_latest ON run_metrics;
DROP FUNCTION run_metrics_keep_latest();
CREATE TRIGGER run_metrics_keep_latest AFTER INSERT ON run_metrics
    REFERENCING NEW TABLE AS logged
    FOR EACH STATEMENT EXECUTE FUNCTION run_metrics_keep_latest_of_statement();
