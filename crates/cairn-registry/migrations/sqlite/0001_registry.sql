-- Cairn registry schema, SQLite. Migrations are append-only: never edit a released one.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE models (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    description  TEXT    NOT NULL DEFAULT '',
    -- The number the next version gets. Only ever increases, so numbers are never reused.
    next_version INTEGER NOT NULL DEFAULT 1,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE model_tags (
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    key      TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE versions (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    digest      TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    file_count  INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (model_id, number)
);

CREATE TABLE version_files (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    PRIMARY KEY (version_id, path)
);
-- Which versions hold a blob: verification reports and garbage collection.
CREATE INDEX version_files_by_blob ON version_files(sha256);

CREATE TABLE version_tags (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (version_id, key)
);

CREATE TABLE version_metrics (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      REAL    NOT NULL,
    PRIMARY KEY (version_id, key)
);

CREATE TABLE version_params (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (version_id, key)
);

CREATE TABLE aliases (
    model_id   INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    alias      TEXT    NOT NULL,
    version_id INTEGER NOT NULL REFERENCES versions(id),
    PRIMARY KEY (model_id, alias)
);

-- Every move of every alias, kept when the alias itself is deleted: rollback reads it.
CREATE TABLE alias_moves (
    id           INTEGER PRIMARY KEY,
    model_id     INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    alias        TEXT    NOT NULL,
    from_version INTEGER,
    to_version   INTEGER,
    action       TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    reason       TEXT
);
CREATE INDEX alias_moves_by_alias ON alias_moves(model_id, alias, id);
