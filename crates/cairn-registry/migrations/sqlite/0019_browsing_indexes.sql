-- What browsing a large model needs (the web UI), read through indexes so a page costs
-- the same at 100 versions as at 100,000:
-- a version's own audit entries, found by their target (`NAME@N`);
CREATE INDEX audit_log_by_target ON audit_log(target, seq);
-- a model's versions sorted by a metric: each value carries its version's model, so the
-- index holds them in order per model and key.
ALTER TABLE version_metrics ADD COLUMN model_id INTEGER;
UPDATE version_metrics SET model_id = (SELECT v.model_id FROM versions v WHERE v.id = version_metrics.version_id);
CREATE INDEX version_metrics_by_model ON version_metrics(model_id, key, value, version_id);
