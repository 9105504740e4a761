-- Metrics of logged models: every value logged with a `model_id` (on the run that
-- logged it, for a dataset when named). A value is keyed as MLflow keys it: the same
-- model, key, time, step and run with another value is refused.
CREATE TABLE logged_model_metrics (
    model_id       TEXT    NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
    key            TEXT    NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    is_nan         BIGINT  NOT NULL,
    timestamp      BIGINT  NOT NULL,
    step           BIGINT  NOT NULL,
    run_id         TEXT    NOT NULL,
    dataset_name   TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (model_id, key, timestamp, step, run_id)
);
