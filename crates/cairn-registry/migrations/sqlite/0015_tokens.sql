-- Who may call the registry: users and service accounts, and their API tokens. A
-- token's secret is never stored: only its SHA-256 (secrets are 256 random bits, so a
-- fast hash is as good as a slow one and lets every request be checked cheaply).
CREATE TABLE principals (
    name       TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,          -- 'user' or 'service'
    created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    id            TEXT    PRIMARY KEY,    -- 12 hex digits, part of the secret
    principal     TEXT    NOT NULL REFERENCES principals(name),
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,       -- 'reader', 'writer' or 'admin'
    models        TEXT,                   -- a model-name pattern; NULL: every model
    secret_sha256 TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER
);
