-- Idempotency keys: a client's key for one write (a registration, an alias move…),
-- bound to its principal and to a fingerprint of the request. While the write is in
-- flight, `owner` (a random token) holds the key until `lease_until`; the write's own
-- transaction stores its `outcome` (JSON), so a key is done exactly when the write
-- committed. A repeated key answers that outcome; a key is forgotten at `expires_at`.
CREATE TABLE idempotency_keys (
    principal   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    outcome     TEXT,
    created_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys(expires_at);
