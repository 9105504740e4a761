//! The delivery queue on the engine layer. Each webhook has a cursor into the audit
//! log and a lease: the server holding the lease reads the events past the cursor,
//! sends them, and in one transaction writes what became of each and moves the cursor —
//! checking that it still holds the lease. The round's first-attempt successes go
//! into one row (`delivered`); every other outcome is a row of `webhook_deliveries`:
//! pending a retry, failed, or delivered after a retry. Only pending rows are the
//! queue.

use cairn_core::webhook::DeliveryState;

use super::delivered::{self, Success};
use super::store::{WEBHOOK_COLUMNS, WebhookRow};
use crate::Result;
use crate::db::MetadataStore;
use crate::db::sql::{Columns, Decode, DecodeError, SqlBuilder, decoded_row};
use crate::db::write::WriteTx;

/// Takes (or renews) the leases of every active webhook that no other server holds,
/// until `until`; answers the webhooks `owner` holds now.
pub(crate) async fn take_leases(
    tx: &mut WriteTx,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<Vec<WebhookRow>> {
    tx.query(&format!(
        "UPDATE webhooks SET lease_owner = $1, lease_until = $2
         WHERE active <> 0 AND (lease_owner = $1 OR lease_until IS NULL OR lease_until < $3)
         RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind(owner)
    .bind(until)
    .bind(now)
    .fetch_all()
    .await
}

/// Gives the leases of `owner` back (a server stopping), so another server need not
/// wait for them to end.
pub(crate) async fn release_leases(tx: &mut WriteTx, owner: &str) -> Result<()> {
    tx.query("UPDATE webhooks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
        .bind(owner)
        .execute()
        .await?;
    Ok(())
}

/// A pending delivery.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub seq: i64,
    pub model: String,
    pub attempts: i64,
    pub next_at: i64,
    pub created_at: i64,
}

impl Decode for Pending {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            seq: c.next()?,
            model: c.next()?,
            attempts: c.next()?,
            next_at: c.next()?,
            created_at: c.next()?,
        })
    }
}
decoded_row!(Pending);

/// What became of a delivery: the row to write (a new one, or a pending one updated).
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub seq: i64,
    pub model: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

impl MetadataStore {
    /// The audit head, and whether any webhook has work: events past its cursor, or a
    /// pending delivery due by `now`.
    pub(crate) async fn webhook_work(&self, now: i64) -> Result<(u64, bool)> {
        let (head, behind, due): (i64, i64, i64) = self
            .read(
                "SELECT (SELECT seq FROM audit_head WHERE id = 1),
                        (SELECT COUNT(*) FROM webhooks WHERE active <> 0
                           AND cursor_seq < (SELECT seq FROM audit_head WHERE id = 1)),
                        (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries
                          WHERE state = 'pending' AND next_at <= $1 LIMIT 1) AS due)",
            )
            .bind(now)
            .fetch_one()
            .await?;
        Ok((head.max(0) as u64, behind > 0 || due > 0))
    }

    /// The webhook's pending deliveries, oldest event first, `limit` at most.
    pub(crate) async fn pending_deliveries(
        &self,
        webhook: &str,
        limit: u32,
    ) -> Result<Vec<Pending>> {
        self.read(
            "SELECT seq, model, attempts, next_at, created_at FROM webhook_deliveries
             WHERE webhook_id = $1 AND state = 'pending' ORDER BY seq LIMIT $2",
        )
        .bind(webhook)
        .bind(i64::from(limit))
        .fetch_all()
        .await
    }
}

/// What one webhook's part of a round made of its deliveries, to write.
pub(crate) struct Step {
    pub webhook: String,
    /// The last event read.
    pub cursor: i64,
    /// Outcomes of new events, and of pending ones retried.
    pub inserted: Vec<Written>,
    pub retried: Vec<Written>,
    /// When a delivery succeeded (the webhook's waiting retries are due then).
    pub endpoint_back: Option<i64>,
    /// A batch was full: more is waiting.
    pub more: bool,
}

/// Writes `step`: its new rows, its retried rows, the cursor, the lease renewed until
/// `lease_until` — if `owner` still holds it; `false` (nothing written) if not.
pub(crate) async fn write_step(
    tx: &mut WriteTx,
    step: &Step,
    owner: &str,
    lease_until: i64,
) -> Result<bool> {
    let (webhook, cursor) = (step.webhook.as_str(), step.cursor);
    let (inserted, updated, endpoint_back) = (&step.inserted, &step.retried, step.endpoint_back);
    let held = tx
        .query(
            "UPDATE webhooks SET cursor_seq = $3, lease_until = $4
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(webhook)
        .bind(owner)
        .bind(cursor)
        .bind(lease_until)
        .execute()
        .await?;
    if held == 0 {
        return Ok(false);
    }
    let (mut successes, mut others) = (Vec::new(), Vec::new());
    for w in inserted {
        match Success::of(w) {
            Some(success) => successes.push(success),
            None => others.push(w),
        }
    }
    delivered::record(tx, webhook, successes).await?;
    for chunk in others.chunks(100) {
        let mut q = SqlBuilder::new(
            tx.backend,
            "INSERT INTO webhook_deliveries (webhook_id, seq, model, state, attempts, next_at,
                 status_code, error, latency_ms, created_at, done_at) VALUES ",
        );
        for (i, w) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .push_bind(webhook.to_owned())
                .push(", ")
                .push_bind(w.seq)
                .push(", ")
                .push_bind(w.model.clone())
                .push(", ")
                .push_bind(w.state.as_str())
                .push(", ")
                .push_bind(w.attempts)
                .push(", ")
                .push_bind(w.next_at)
                .push(", ")
                .push_bind(w.status_code.map(i64::from))
                .push(", ")
                .push_bind(w.error.clone())
                .push(", ")
                .push_bind(w.latency_ms.map(|l| l.min(i64::MAX as u64) as i64))
                .push(", ")
                .push_bind(w.created_at)
                .push(", ")
                .push_bind(w.done_at)
                .push(")");
        }
        q.push(" ON CONFLICT (webhook_id, seq) DO NOTHING");
        tx.sql(q).execute().await?;
    }
    for w in updated {
        tx.query(
            "UPDATE webhook_deliveries SET state = $2, attempts = $3, next_at = $4, status_code = $5,
                    error = $6, latency_ms = $7, done_at = $8
             WHERE webhook_id = $9 AND seq = $1 AND state = 'pending'",
        )
        .bind(w.seq)
        .bind(w.state.as_str())
        .bind(w.attempts)
        .bind(w.next_at)
        .bind(w.status_code.map(i64::from))
        .bind(&w.error)
        .bind(w.latency_ms.map(|l| l.min(i64::MAX as u64) as i64))
        .bind(w.done_at)
        .bind(webhook)
        .execute()
        .await?;
    }
    if let Some(now) = endpoint_back {
        tx.query(
            "UPDATE webhook_deliveries SET next_at = $2
             WHERE webhook_id = $1 AND state = 'pending' AND next_at > $2",
        )
        .bind(webhook)
        .bind(now)
        .execute()
        .await?;
    }
    Ok(true)
}

/// Queues a delivered or failed delivery again: due now, with a new retry window. A
/// first-attempt success moves out of its round's record into the queue.
pub(crate) async fn requeue(tx: &mut WriteTx, webhook: &str, seq: i64, now: i64) -> Result<bool> {
    let changed = tx
        .query(
            "UPDATE webhook_deliveries SET state = 'pending', next_at = $3, created_at = $3,
                    done_at = NULL
             WHERE webhook_id = $1 AND seq = $2 AND state <> 'pending'",
        )
        .bind(webhook)
        .bind(seq)
        .bind(now)
        .execute()
        .await?;
    if changed > 0 {
        return Ok(true);
    }
    let Some(success) = delivered::take(tx, webhook, seq).await? else {
        return Ok(false);
    };
    // Its model from its event, as the round that sent it had it: the queue of that
    // model is where it waits.
    tx.query(
        "INSERT INTO webhook_deliveries (webhook_id, seq, model, state, attempts, next_at,
             status_code, latency_ms, created_at)
         VALUES ($1, $2, COALESCE((SELECT model FROM audit_log WHERE seq = $2), ''),
                 'pending', 1, $3, $4, $5, $3)",
    )
    .bind(webhook)
    .bind(seq)
    .bind(now)
    .bind(i64::from(success.status_code))
    .bind(success.latency_ms.min(i64::MAX as u64) as i64)
    .execute()
    .await?;
    Ok(true)
}

/// Deletes finished deliveries older than `before`.
pub(crate) async fn prune(tx: &mut WriteTx, before: i64) -> Result<u64> {
    let rows = tx
        .query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND done_at < $1")
        .bind(before)
        .execute()
        .await?;
    Ok(rows + delivered::prune(tx, before).await?)
}
