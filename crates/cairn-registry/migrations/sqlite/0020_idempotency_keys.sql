-- Idempotency keys: a client's key for one write (a registration, an alias move…),
-- bound to its principal and to a fingerprint of the request. The row is written by the
-- write's own transaction, with its `outcome` (JSON): a key is there exactly when its
-- write committed. A repeated key answers that outcome; a key is forgotten at
-- `expires_at`.
CREATE TABLE idempotency_keys (
    principal   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys(expires_at);
