-- An experiment's runs newest first, in exactly the order a run search returns them
-- (start time descending, then id): a search whose filter matches many runs walks
-- this index and stops at its page, instead of sorting every match.
CREATE INDEX runs_newest_first ON runs(experiment_id, start_time DESC, id);
DROP INDEX runs_by_experiment;
