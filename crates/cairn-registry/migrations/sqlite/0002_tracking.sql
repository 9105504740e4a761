-- Experiment tracking (MLflow's model: experiments, runs, params, metrics, tags, logged
-- models) and the artifact index that maps artifact paths onto content-addressed blobs.
-- Times are milliseconds since the Unix epoch.

CREATE TABLE experiments (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    artifact_location TEXT    NOT NULL,
    lifecycle_stage   TEXT    NOT NULL DEFAULT 'active',
    creation_time     INTEGER NOT NULL,
    last_update_time  INTEGER NOT NULL
);
-- MLflow clients expect experiment 0, "Default", to exist.
INSERT INTO experiments (id, name, artifact_location, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE runs (
    id              TEXT    PRIMARY KEY,  -- 32 hex digits
    experiment_id   INTEGER NOT NULL REFERENCES experiments(id),
    name            TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER,
    lifecycle_stage TEXT    NOT NULL DEFAULT 'active',
    artifact_uri    TEXT    NOT NULL
);
CREATE INDEX runs_by_experiment ON runs(experiment_id, start_time);

CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Every logged value. NaN cannot be stored as REAL in SQLite: is_nan marks it.
CREATE TABLE run_metrics (
    run_id    TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL
);
CREATE INDEX run_metrics_history ON run_metrics(run_id, key, timestamp, step);

-- The newest value per key (largest step, then timestamp): what searches filter on.
CREATE TABLE run_latest_metrics (
    run_id    TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_latest_metrics_by_key ON run_latest_metrics(key, value);

CREATE TABLE run_inputs (
    run_id         TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    source_type    TEXT NOT NULL,
    source         TEXT NOT NULL,
    schema         TEXT,
    profile        TEXT,
    context        TEXT,
    PRIMARY KEY (run_id, name, digest)
);

CREATE TABLE logged_models (
    id                TEXT    PRIMARY KEY,  -- "m-" + 32 hex digits
    experiment_id     INTEGER NOT NULL REFERENCES experiments(id),
    name              TEXT    NOT NULL,
    artifact_uri      TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    model_type        TEXT    NOT NULL DEFAULT '',
    source_run_id     TEXT,
    lifecycle_stage   TEXT    NOT NULL DEFAULT 'active',
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL
);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE run_outputs (
    run_id   TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    model_id TEXT    NOT NULL,
    step     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, model_id)
);

-- Artifacts: a path under the artifact root (e.g. "2/<run>/artifacts/model/MLmodel")
-- and the blob holding its bytes.
CREATE TABLE artifacts (
    path       TEXT    PRIMARY KEY,
    sha256     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX artifacts_by_blob ON artifacts(sha256);

-- MLflow's view of a version: where it was registered from, and its legacy stage.
ALTER TABLE versions ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN run_link TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN logged_model_id TEXT;
ALTER TABLE versions ADD COLUMN stage TEXT NOT NULL DEFAULT 'None';
ALTER TABLE versions ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE versions SET updated_at = created_at;
