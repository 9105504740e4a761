-- Webhooks: where to send which events. `protocol` is 'cairn' (cairn.event.v1 bodies,
-- Standard Webhooks headers) or 'mlflow' (MLflow 3's payloads and X-MLflow-* headers);
-- `events` is a JSON array of event types ('alias.*', 'version.create'…) or, for
-- 'mlflow', of 'entity.action' names. The secret is encrypted under the registry's
-- webhook key (AES-256-GCM), whose id is kept beside it. Every event numbered up to
-- `cursor_seq` was handled (delivered, queued for a retry, or not wanted); it starts
-- at the audit entry that created the webhook. One server at a time delivers a
-- webhook: the one whose lease (`lease_owner`, until `lease_until`) holds.
CREATE TABLE webhooks (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    url         TEXT    NOT NULL,
    protocol    TEXT    NOT NULL,
    events      TEXT    NOT NULL,
    models      TEXT    NOT NULL,
    secret      TEXT,
    secret_key  TEXT,
    active      INTEGER NOT NULL,
    cursor_seq  INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- What became of one event sent to one webhook: delivered, failed for good, or pending
-- a retry. Pending deliveries of one webhook and one model (`model` '' for registry-wide
-- events) go in `seq` order, one at a time; while a model has one, its new events queue
-- behind it. A delivery's id is `WEBHOOK_ID.SEQ`: the same on every attempt and every
-- server, and keyed in event order, so a delivered event appends to the table.
CREATE TABLE webhook_deliveries (
    webhook_id  TEXT    NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    model       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    latency_ms  INTEGER,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER,
    PRIMARY KEY (webhook_id, seq)
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, model, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (done_at) WHERE state <> 'pending';
