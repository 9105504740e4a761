-- The audit log: one entry per registry mutation, appended in the mutation's own
-- transaction, each hashing its content and the previous entry's hash (a chain that
-- `cairn audit verify` recomputes). `audit_head` holds the newest entry's number and
-- hash: appends lock it, so entries are numbered 1, 2, 3… with no gap, and deleting the
-- newest entries shows too.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    model     TEXT    NOT NULL,  -- the model concerned, '' for none
    target    TEXT    NOT NULL,
    before    TEXT,              -- JSON, NULL when there was nothing
    after     TEXT,              -- JSON, NULL when nothing is left
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX audit_log_by_model ON audit_log(model, seq);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
