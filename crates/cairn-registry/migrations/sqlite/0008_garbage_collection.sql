-- Garbage collection of blobs. `gc_state` is the fence: a collection holds its row
-- exclusively while it decides and deletes; writers that reference blobs hold it shared
-- (on SQLite every write transaction is exclusive anyway). `blob_tombstones` remembers
-- what a collection deleted, and when, until the blob is uploaded again: a reference
-- to a collected blob is refused instead of dangling.
CREATE TABLE gc_state (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    runs INTEGER NOT NULL DEFAULT 0
);
INSERT INTO gc_state (id) VALUES (1);

CREATE TABLE blob_tombstones (
    sha256 TEXT    PRIMARY KEY,
    at     INTEGER NOT NULL,
    -- The collection (gc_state.runs) that deleted it: a write that began after that
    -- collection had committed recreated the bytes; one that began earlier may not have.
    run    INTEGER NOT NULL
);
CREATE INDEX artifact_upload_parts_by_blob ON artifact_upload_parts(sha256);
