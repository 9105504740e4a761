-- Marks of transactions that write something that must not happen twice but append no
-- audit entry (a run, an experiment, a logged model created): a random token inserted
-- by the transaction itself, looked for when the answer to its COMMIT was lost.
-- PostgreSQL only writes them (a SQLite commit cannot lose its answer); marks older
-- than a day are swept.
CREATE TABLE commit_marks (
    token TEXT PRIMARY KEY,
    at    BIGINT NOT NULL
);
