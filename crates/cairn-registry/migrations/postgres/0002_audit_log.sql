-- The audit log: one entry per registry mutation, appended in the mutation's own
-- transaction, each hashing its content and the previous entry's hash (a chain that
-- `cairn audit verify` recomputes). `audit_head` holds the newest entry's number and
-- hash: appends lock it, so entries are numbered 1, 2, 3… with no gap across servers,
-- and deleting the newest entries shows too.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT COLLATE "C" NOT NULL,
    action    TEXT COLLATE "C" NOT NULL,
    model     TEXT COLLATE "C" NOT NULL,  -- the model concerned, '' for none
    target    TEXT COLLATE "C" NOT NULL,
    before    TEXT COLLATE "C",           -- JSON, NULL when there was nothing
    after     TEXT COLLATE "C",           -- JSON, NULL when nothing is left
    prev_hash TEXT COLLATE "C" NOT NULL,
    hash      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX audit_log_by_model ON audit_log(model, seq);

CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT COLLATE "C" NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
