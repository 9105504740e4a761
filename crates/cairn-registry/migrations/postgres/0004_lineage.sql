-- Lineage recorded at registration. Parents are named by model and number, so a
-- version's ancestry survives the deletion of an ancestor.
CREATE TABLE version_code (
    version_id BIGINT PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    git_commit TEXT COLLATE "C" NOT NULL,
    git_branch TEXT COLLATE "C",
    git_remote TEXT COLLATE "C",
    git_dirty  BIGINT NOT NULL
);
CREATE INDEX version_code_by_commit ON version_code(git_commit);

CREATE TABLE version_inputs (
    version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    kind       TEXT COLLATE "C" NOT NULL,   -- dataset | dvc | mlflow
    path       TEXT COLLATE "C" NOT NULL,
    digest     TEXT COLLATE "C" NOT NULL,   -- sha256:<hex> | md5:<hex> | MLflow's digest
    size       BIGINT,
    files      BIGINT,
    PRIMARY KEY (version_id, kind, path, digest)
);
CREATE INDEX version_inputs_by_digest ON version_inputs(digest);

CREATE TABLE version_parents (
    version_id     BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    parent_model   TEXT COLLATE "C" NOT NULL,
    parent_version BIGINT NOT NULL,
    PRIMARY KEY (version_id, parent_model, parent_version)
);
CREATE INDEX version_parents_by_parent ON version_parents(parent_model, parent_version);

-- Environment files (requirements, conda, lock files): blobs, like version files.
CREATE TABLE version_environment (
    version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    path       TEXT COLLATE "C" NOT NULL,
    sha256     TEXT COLLATE "C" NOT NULL,
    size       BIGINT NOT NULL,
    PRIMARY KEY (version_id, path)
);
CREATE INDEX version_environment_by_blob ON version_environment(sha256);
