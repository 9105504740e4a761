-- The audit log names who really made each change: the authenticated user (in `actor`)
-- and the id of the token the request came with. Entries written before carry format 1
-- and keep verifying under the hash they were written with; new entries are format 2,
-- whose hash also covers the token (see audit.rs).
ALTER TABLE audit_log ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN token TEXT;

-- Aliases only the admins of their model may move, roll back or delete (also before
-- the alias points anywhere). Deleted with their model.
CREATE TABLE protected_aliases (
    model_id     INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    alias        TEXT    NOT NULL,
    protected_by TEXT    NOT NULL,
    protected_at INTEGER NOT NULL,
    PRIMARY KEY (model_id, alias)
);

-- Refused requests (401, 403): a security log apart from the hash-chained audit log,
-- which is the registry's state and must not move for anonymous traffic. Written at a
-- bounded rate by the servers; read with `cairn audit denied`.
CREATE TABLE access_denials (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    principal TEXT,               -- NULL: no valid credentials
    token  TEXT,
    method TEXT    NOT NULL,
    path   TEXT    NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT    NOT NULL
);

-- Users may also log in with a password (MLflow's Basic auth), stored as an argon2id
-- PHC string, and hold grants of their own: what a password login may do. A token
-- carries its own grant instead (its user's denies still apply).
ALTER TABLE principals ADD COLUMN password_hash TEXT;
CREATE TABLE grants (
    principal TEXT NOT NULL REFERENCES principals(name) ON DELETE CASCADE,
    resource  TEXT NOT NULL,          -- '': everything; 'models:PATTERN'; 'experiment:ID'
    role      TEXT,                   -- 'reader', 'writer', 'admin'; NULL: explicitly denied
    PRIMARY KEY (principal, resource)
);
