-- A model's newest version per MLflow stage (registered models' latest_versions).
CREATE INDEX versions_by_stage ON versions(model_id, stage, number);
