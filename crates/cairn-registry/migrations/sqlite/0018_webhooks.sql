-- Webhooks: where to send which events. `protocol` is 'cairn' (cairn.event.v1 bodies,
-- Standard Webhooks headers) or 'mlflow' (MLflow 3's payloads and X-MLflow-* headers);
-- `events` is a JSON array of event types ('alias.*', 'version.create'…) or, for
-- 'mlflow', of 'entity.action' names. The secret is encrypted under the registry's
-- webhook key (AES-256-GCM), whose id is kept beside it. A webhook is sent the events
-- numbered after `after_seq`: the audit entry that created it.
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
    after_seq   INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- One event to send to one webhook. Deliveries of one webhook and one model (`model`
-- '' for registry-wide events) are sent in `seq` order, one at a time; `lease_until`
-- marks the one a server is sending (another may take it once the lease ends).
CREATE TABLE webhook_deliveries (
    id          TEXT    PRIMARY KEY,
    webhook_id  TEXT    NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    model       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    lease_until INTEGER,
    status_code INTEGER,
    error       TEXT,
    latency_ms  INTEGER,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER,
    UNIQUE (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, model, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (done_at) WHERE state <> 'pending';

-- The last audit entry turned into deliveries, by whichever server did it.
CREATE TABLE webhook_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, seq) SELECT 1, seq FROM audit_head WHERE id = 1;
