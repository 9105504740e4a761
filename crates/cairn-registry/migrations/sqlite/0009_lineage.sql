-- Lineage recorded at registration. Parents are named by model and number, so a
-- version's ancestry survives the deletion of an ancestor.
CREATE TABLE version_code (
    version_id INTEGER PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    git_commit TEXT    NOT NULL,
    git_branch TEXT,
    git_remote TEXT,
    git_dirty  INTEGER NOT NULL
);
CREATE INDEX version_code_by_commit ON version_code(git_commit);

CREATE TABLE version_inputs (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,   -- dataset | dvc | mlflow
    path       TEXT    NOT NULL,
    digest     TEXT    NOT NULL,   -- sha256:<hex> | md5:<hex> | MLflow's digest
    size       INTEGER,
    files      INTEGER,
    PRIMARY KEY (version_id, kind, path, digest)
);
CREATE INDEX version_inputs_by_digest ON version_inputs(digest);

CREATE TABLE version_parents (
    version_id     INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    parent_model   TEXT    NOT NULL,
    parent_version INTEGER NOT NULL,
    PRIMARY KEY (version_id, parent_model, parent_version)
);
CREATE INDEX version_parents_by_parent ON version_parents(parent_model, parent_version);

-- Environment files (requirements, conda, lock files): blobs, like version files.
CREATE TABLE version_environment (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    PRIMARY KEY (version_id, path)
);
CREATE INDEX version_environment_by_blob ON version_environment(sha256);
