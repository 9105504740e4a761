-- Deliveries that succeeded at their first attempt (nearly all of them), kept
-- compactly: one row per webhook per delivery round, `deliveries` a JSON array of
-- [seq, status_code, latency_ms, created_at, done_at] in event order, every seq between
-- `first_seq` and `last_seq`; `done_at` is the round's last. One row a round instead of
-- one an event keeps the delivery log off the single writer's time, which the writes
-- that caused the events need. Every other delivery (pending, failed, retried, queued
-- again) is a row of webhook_deliveries; an event is in one of the two tables, never
-- both: queueing a delivered event again moves it out of its round's row.
CREATE TABLE webhook_delivered (
    webhook_id TEXT    NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    last_seq   INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL,
    done_at    INTEGER NOT NULL,
    deliveries TEXT    NOT NULL,
    UNIQUE (webhook_id, last_seq)
);
CREATE INDEX webhook_delivered_done ON webhook_delivered (done_at);
