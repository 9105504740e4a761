-- An external version: registered from a source whose bytes the registry does not hold
-- (an `s3://…` location, a run with nothing logged where the source points), as MLflow
-- registers them. It has no files, and `digest` is '' (never a digest that could pass
-- for a verified one); the source is in `source`.
ALTER TABLE versions ADD COLUMN external INTEGER NOT NULL DEFAULT 0;
