-- A model's newest version per MLflow stage (registered models' latest_versions).
CREATE INDEX versions_by_stage ON versions(model_id, stage, number);
-- The aliases of a version (every version view lists them).
CREATE INDEX aliases_by_version ON aliases(version_id);
