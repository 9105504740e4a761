-- The versions registered from a logged model: MLflow's view of a logged model lists them,
-- read from the version rows themselves (written in the version's own transaction).
CREATE INDEX versions_by_logged_model ON versions(logged_model_id) WHERE logged_model_id IS NOT NULL;
