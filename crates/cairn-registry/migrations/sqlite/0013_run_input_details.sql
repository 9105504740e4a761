-- Every tag of a dataset input, not only its context: a JSON object {key: value}
-- (NULL on inputs logged before, whose one tag is `context`). And the logged models a
-- run used as inputs.
ALTER TABLE run_inputs ADD COLUMN tags TEXT;

CREATE TABLE run_model_inputs (
    run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    PRIMARY KEY (run_id, model_id)
);
