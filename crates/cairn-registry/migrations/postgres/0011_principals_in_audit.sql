-- The audit log names who really made each change: the authenticated user (in `actor`)
-- and the id of the token the request came with. Entries written before carry format 1
-- and keep verifying under the hash they were written with; new entries are format 2,
-- whose hash also covers the token (see audit.rs).
ALTER TABLE audit_log ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN token TEXT;

-- Aliases only the admins of their model may move, roll back or delete (also before
-- the alias points anywhere). Deleted with their model.
CREATE TABLE protected_aliases (
    model_id     BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    alias        TEXT COLLATE "C" NOT NULL,
    protected_by TEXT   NOT NULL,
    protected_at BIGINT NOT NULL,
    PRIMARY KEY (model_id, alias)
);
