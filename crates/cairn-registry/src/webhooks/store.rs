//! Webhooks and their deliveries on the engine layer: the `webhooks` rows (written with
//! their audit entries), and the delivery queue — fan-out of new audit entries into
//! `webhook_deliveries`, claiming what is due, recording what an attempt got.

use cairn_core::access::Actor;
use cairn_core::model::AuditEntry;
use cairn_core::webhook::{Delivery, DeliveryState, Protocol, Webhook};
use serde_json::json;

use crate::audit::{self, Action, Change};
use crate::db::sql::{Columns, Decode, DecodeError, SqlBuilder, decoded_row};
use crate::db::write::WriteTx;
use crate::db::{MetadataStore, corrupt_row, time_of};
use crate::error::Missing;
use crate::{Error, Result};

/// A `webhooks` row, secret included (encrypted).
#[derive(Debug, Clone)]
pub(crate) struct WebhookRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub url: String,
    pub protocol: String,
    pub events: String,
    pub models: String,
    pub secret: Option<String>,
    pub secret_key: Option<String>,
    pub active: i64,
    pub after_seq: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const WEBHOOK_COLUMNS: &str = "id, name, description, url, protocol, events, models, secret, \
                               secret_key, active, after_seq, created_by, created_at, updated_at";

impl Decode for WebhookRow {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            name: c.next()?,
            description: c.next()?,
            url: c.next()?,
            protocol: c.next()?,
            events: c.next()?,
            models: c.next()?,
            secret: c.next()?,
            secret_key: c.next()?,
            active: c.next()?,
            after_seq: c.next()?,
            created_by: c.next()?,
            created_at: c.next()?,
            updated_at: c.next()?,
        })
    }
}
decoded_row!(WebhookRow);

impl WebhookRow {
    /// The API's view, checked: a row that does not decode is a damaged store.
    pub fn view(&self) -> Result<Webhook> {
        Ok(Webhook {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            url: self.url.clone(),
            protocol: Protocol::parse(&self.protocol)
                .ok_or_else(|| corrupt_row("webhooks.protocol"))?,
            events: serde_json::from_str(&self.events)
                .map_err(|_| corrupt_row("webhooks.events"))?,
            models: self.models.clone(),
            active: self.active != 0,
            signed: self.secret.is_some(),
            created_by: self.created_by.clone(),
            created_at: time_of(self.created_at),
            updated_at: time_of(self.updated_at),
        })
    }

    /// What the audit log records of it: never the secret.
    fn audited(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "url": self.url,
            "protocol": self.protocol,
            "events": serde_json::from_str::<serde_json::Value>(&self.events).ok(),
            "models": self.models,
            "active": self.active != 0,
            "signed": self.secret.is_some(),
        })
    }
}

/// Inserts `row` and records its creation; the webhook gets the events after that
/// entry (its `after_seq` is set here).
pub(crate) async fn insert_webhook(
    tx: &mut WriteTx,
    mut row: WebhookRow,
    actor: &Actor,
) -> Result<WebhookRow> {
    Change::new(actor, Action::WebhookCreate, "", row.id.clone())
        .after(row.audited())
        .append(tx)
        .await?;
    row.after_seq = tx
        .query("SELECT seq FROM audit_head WHERE id = 1")
        .scalar_one()
        .await?;
    tx.query(&format!(
        "INSERT INTO webhooks ({WEBHOOK_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.url)
    .bind(&row.protocol)
    .bind(&row.events)
    .bind(&row.models)
    .bind(&row.secret)
    .bind(&row.secret_key)
    .bind(row.active)
    .bind(row.after_seq)
    .bind(&row.created_by)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute()
    .await?;
    Ok(row)
}

/// The webhook `id`, locked for a change in `tx`.
pub(crate) async fn webhook_for_update(tx: &mut WriteTx, id: &str) -> Result<WebhookRow> {
    // An UPDATE takes the row lock on every engine (see `store::lock_model`).
    tx.query("UPDATE webhooks SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute()
        .await?;
    tx.query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional()
    .await?
    .ok_or_else(|| Error::NotFound(Missing::Webhook(id.to_owned())))
}

/// Writes `after` over `before` (the same webhook) and records the change.
pub(crate) async fn update_webhook(
    tx: &mut WriteTx,
    before: &WebhookRow,
    after: &WebhookRow,
    actor: &Actor,
) -> Result<()> {
    tx.query(
        "UPDATE webhooks SET name = $2, description = $3, url = $4, events = $5, models = $6,
                secret = $7, secret_key = $8, active = $9, updated_at = $10
         WHERE id = $1",
    )
    .bind(&after.id)
    .bind(&after.name)
    .bind(&after.description)
    .bind(&after.url)
    .bind(&after.events)
    .bind(&after.models)
    .bind(&after.secret)
    .bind(&after.secret_key)
    .bind(after.active)
    .bind(after.updated_at)
    .execute()
    .await?;
    let mut change_after = after.audited();
    if before.secret != after.secret {
        change_after["secret_changed"] = json!(true);
    }
    Change::new(actor, Action::WebhookUpdate, "", after.id.clone())
        .before(before.audited())
        .after(change_after)
        .append(tx)
        .await
}

/// Deletes the webhook and its deliveries; recorded.
pub(crate) async fn delete_webhook(
    tx: &mut WriteTx,
    row: &WebhookRow,
    actor: &Actor,
) -> Result<()> {
    tx.query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
        .bind(&row.id)
        .execute()
        .await?;
    tx.query("DELETE FROM webhooks WHERE id = $1")
        .bind(&row.id)
        .execute()
        .await?;
    Change::new(actor, Action::WebhookDelete, "", row.id.clone())
        .before(row.audited())
        .append(tx)
        .await
}

/// A `webhook_deliveries` row with its event's type.
struct DeliveryRow {
    id: String,
    webhook_id: String,
    seq: i64,
    kind: Option<String>,
    model: String,
    state: String,
    attempts: i64,
    status_code: Option<i64>,
    error: Option<String>,
    latency_ms: Option<i64>,
    created_at: i64,
    next_at: i64,
    done_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.seq, a.action, d.model, d.state, d.attempts, \
     d.status_code, d.error, d.latency_ms, d.created_at, d.next_at, d.done_at";

impl Decode for DeliveryRow {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            webhook_id: c.next()?,
            seq: c.next()?,
            kind: c.next()?,
            model: c.next()?,
            state: c.next()?,
            attempts: c.next()?,
            status_code: c.next()?,
            error: c.next()?,
            latency_ms: c.next()?,
            created_at: c.next()?,
            next_at: c.next()?,
            done_at: c.next()?,
        })
    }
}
decoded_row!(DeliveryRow);

impl DeliveryRow {
    fn view(self) -> Result<Delivery> {
        let state =
            DeliveryState::parse(&self.state).ok_or_else(|| corrupt_row("deliveries.state"))?;
        Ok(Delivery {
            id: self.id,
            webhook_id: self.webhook_id,
            seq: u64::try_from(self.seq).map_err(|_| corrupt_row("deliveries.seq"))?,
            kind: self.kind.unwrap_or_default(),
            model: Some(self.model).filter(|m| !m.is_empty()),
            state,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            status_code: self.status_code.and_then(|s| u16::try_from(s).ok()),
            error: self.error,
            latency_ms: self.latency_ms.and_then(|l| u64::try_from(l).ok()),
            created_at: time_of(self.created_at),
            next_attempt_at: (state == DeliveryState::Pending).then(|| time_of(self.next_at)),
            done_at: self.done_at.map(time_of),
        })
    }
}

impl MetadataStore {
    pub(crate) async fn webhook_rows(&self) -> Result<Vec<WebhookRow>> {
        self.read(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at DESC, id"
        ))
        .fetch_all()
        .await
    }

    pub(crate) async fn webhook_row(&self, id: &str) -> Result<WebhookRow> {
        self.read(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional()
        .await?
        .ok_or_else(|| Error::NotFound(Missing::Webhook(id.to_owned())))
    }

    /// The webhook's deliveries, newest event first, `limit` at most.
    pub(crate) async fn deliveries(
        &self,
        webhook: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let mut q = SqlBuilder::new(
            self.backend(),
            format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
                 LEFT JOIN audit_log a ON a.seq = d.seq WHERE d.webhook_id = "
            ),
        );
        q.push_bind(webhook.to_owned());
        if let Some(state) = state {
            q.push(" AND d.state = ").push_bind(state.as_str());
        }
        q.push(" ORDER BY d.seq DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<DeliveryRow> = self.read_sql(q).fetch_all().await?;
        rows.into_iter().map(DeliveryRow::view).collect()
    }

    pub(crate) async fn delivery(&self, id: &str) -> Result<Delivery> {
        let row: Option<DeliveryRow> = self
            .read(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
                 LEFT JOIN audit_log a ON a.seq = d.seq WHERE d.id = $1"
            ))
            .bind(id)
            .fetch_optional()
            .await?;
        row.ok_or_else(|| Error::NotFound(Missing::WebhookDelivery(id.to_owned())))?
            .view()
    }

    /// The audit head, and whether the dispatcher has anything to do: audit entries
    /// not yet fanned out, or a pending delivery due by `now`.
    pub(crate) async fn webhook_work(&self, now: i64) -> Result<(u64, bool)> {
        let (head, cursor, due): (i64, i64, i64) = self
            .read(
                "SELECT (SELECT seq FROM audit_head WHERE id = 1),
                        (SELECT seq FROM webhook_cursor WHERE id = 1),
                        (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries
                          WHERE state = 'pending' AND next_at <= $1 LIMIT 1) AS due)",
            )
            .bind(now)
            .fetch_one()
            .await?;
        Ok((head.max(0) as u64, head > cursor || due > 0))
    }
}

/// Queues `redeliver`'s delivery again: due now, with a new retry window.
pub(crate) async fn requeue(tx: &mut WriteTx, id: &str, now: i64) -> Result<bool> {
    let changed = tx
        .query(
            "UPDATE webhook_deliveries SET state = 'pending', next_at = $2, created_at = $2,
                    lease_until = NULL, done_at = NULL
             WHERE id = $1 AND state <> 'pending'",
        )
        .bind(id)
        .bind(now)
        .execute()
        .await?;
    Ok(changed > 0)
}

/// Audit entries fanned out per step.
const FAN_OUT_BATCH: u32 = 1000;

/// Turns the audit entries after the shared cursor into deliveries for the active
/// webhooks that want them, and moves the cursor. The cursor row is locked first, so
/// servers fan out one at a time and each entry exactly once. Entries are read up to
/// the committed head only: an entry's number is taken under the head's row lock,
/// held until it commits, so every entry up to the head is committed.
pub(crate) async fn fan_out(tx: &mut WriteTx, now: i64) -> Result<usize> {
    let cursor: i64 = tx
        .query("UPDATE webhook_cursor SET seq = seq WHERE id = 1 RETURNING seq")
        .scalar_one()
        .await?;
    let head: i64 = tx
        .query("SELECT seq FROM audit_head WHERE id = 1")
        .scalar_one()
        .await?;
    if head <= cursor {
        return Ok(0);
    }
    let hooks: Vec<WebhookRow> = tx
        .query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE active <> 0"
        ))
        .fetch_all()
        .await?;
    let hooks: Vec<(WebhookRow, Webhook)> = hooks
        .into_iter()
        .filter_map(|row| row.view().ok().map(|view| (row, view)))
        .collect();
    let (entries, upto) = if hooks.is_empty() {
        (Vec::new(), head)
    } else {
        let entries = audit::entries_in(tx, cursor as u64, head as u64, FAN_OUT_BATCH).await?;
        let upto = entries.last().map_or(head, |e| e.seq as i64);
        (entries, upto)
    };
    let mut queued = 0;
    let mut insert = Vec::new();
    for entry in entries {
        let seq = entry.seq as i64;
        let model = entry.model.clone();
        let event = cairn_core::event::Event::from(entry);
        for (row, view) in &hooks {
            if seq > row.after_seq && view.wants(&event) {
                insert.push((row.id.clone(), seq, model.clone()));
            }
        }
    }
    for chunk in insert.chunks(200) {
        let mut q = SqlBuilder::new(
            tx.backend,
            "INSERT INTO webhook_deliveries (id, webhook_id, seq, model, state, next_at, created_at) VALUES ",
        );
        for (i, (hook, seq, model)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .push_bind(uuid::Uuid::new_v4().to_string())
                .push(", ")
                .push_bind(hook.clone())
                .push(", ")
                .push_bind(*seq)
                .push(", ")
                .push_bind(model.clone())
                .push(", 'pending', ")
                .push_bind(now)
                .push(", ")
                .push_bind(now)
                .push(")");
        }
        q.push(" ON CONFLICT (webhook_id, seq) DO NOTHING");
        queued += tx.sql(q).execute().await? as usize;
    }
    tx.query("UPDATE webhook_cursor SET seq = $1 WHERE id = 1")
        .bind(upto)
        .execute()
        .await?;
    Ok(queued)
}

/// A delivery a server took to send: what it needs to build and sign the request.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: String,
    pub webhook_id: String,
    pub url: String,
    pub protocol: String,
    pub secret: Option<String>,
    pub secret_key: Option<String>,
    pub created_at: i64,
    pub attempts: i64,
    pub event: AuditEntry,
}

/// A due delivery heading its queue, with its webhook's columns.
struct Claimable {
    id: String,
    webhook_id: String,
    url: String,
    protocol: String,
    secret: Option<String>,
    secret_key: Option<String>,
    created_at: i64,
    attempts: i64,
    seq: i64,
}

impl Decode for Claimable {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            webhook_id: c.next()?,
            url: c.next()?,
            protocol: c.next()?,
            secret: c.next()?,
            secret_key: c.next()?,
            created_at: c.next()?,
            attempts: c.next()?,
            seq: c.next()?,
        })
    }
}
decoded_row!(Claimable);

/// Takes up to `limit` due deliveries that head their queue (the oldest pending one
/// of their webhook and model) and are not taken, until `lease_until`. The lease is
/// taken by a conditional UPDATE, which on PostgreSQL re-checks a row another server
/// leased meanwhile: a delivery is sent by one server at a time.
pub(crate) async fn claim(
    tx: &mut WriteTx,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<Claimed>> {
    let heads: Vec<Claimable> = tx
        .query(
            "SELECT d.id, d.webhook_id, w.url, w.protocol, w.secret, w.secret_key, d.created_at,
                    d.attempts, d.seq
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.state = 'pending' AND d.next_at <= $1 AND w.active <> 0
               AND (d.lease_until IS NULL OR d.lease_until < $1)
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                               WHERE e.webhook_id = d.webhook_id AND e.model = d.model
                                 AND e.state = 'pending' AND e.seq < d.seq)
             ORDER BY d.seq LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all()
        .await?;
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = SqlBuilder::new(tx.backend, "UPDATE webhook_deliveries SET lease_until = ");
    q.push_bind(lease_until)
        .push(" WHERE state = 'pending' AND (lease_until IS NULL OR lease_until < ");
    q.push_bind(now).push(") AND id IN (");
    for (i, head) in heads.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push_bind(head.id.clone());
    }
    q.push(") RETURNING id");
    let taken: Vec<String> = tx.sql(q).scalar_all().await?;
    let heads: Vec<_> = heads
        .into_iter()
        .filter(|h| taken.contains(&h.id))
        .collect();
    let seqs: Vec<u64> = heads.iter().map(|h| h.seq as u64).collect();
    let events = audit::entries_numbered(tx, &seqs).await?;
    let mut claimed = Vec::with_capacity(heads.len());
    for head in heads {
        // Two webhooks may take the same event: each gets its own copy.
        let event = events
            .iter()
            .find(|e| e.seq as i64 == head.seq)
            .cloned()
            .ok_or_else(|| corrupt_row("webhook_deliveries.seq"))?;
        claimed.push(Claimed {
            id: head.id,
            webhook_id: head.webhook_id,
            url: head.url,
            protocol: head.protocol,
            secret: head.secret,
            secret_key: head.secret_key,
            created_at: head.created_at,
            attempts: head.attempts,
            event,
        });
    }
    Ok(claimed)
}

/// What one attempt got.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub delivery: String,
    pub webhook_id: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// `None`: delivered. Else when to try again, or `Some(None)`: give up.
    pub retry_at: Option<Option<i64>>,
}

/// Records attempts. A success also makes the webhook's waiting retries due now: its
/// endpoint answers again.
pub(crate) async fn record(tx: &mut WriteTx, outcomes: &[Outcome], now: i64) -> Result<()> {
    let mut back = Vec::new();
    for o in outcomes {
        let (state, next_at, done_at) = match o.retry_at {
            None => ("delivered", now, Some(now)),
            Some(Some(at)) => ("pending", at, None),
            Some(None) => ("failed", now, Some(now)),
        };
        tx.query(
            "UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1, status_code = $3,
                    error = $4, latency_ms = $5, next_at = $6, done_at = $7, lease_until = NULL
             WHERE id = $1",
        )
        .bind(&o.delivery)
        .bind(state)
        .bind(o.status_code.map(i64::from))
        .bind(&o.error)
        .bind(i64::try_from(o.latency_ms).unwrap_or(i64::MAX))
        .bind(next_at)
        .bind(done_at)
        .execute()
        .await?;
        if o.retry_at.is_none() && !back.contains(&o.webhook_id) {
            back.push(o.webhook_id.clone());
        }
    }
    for webhook in back {
        tx.query(
            "UPDATE webhook_deliveries SET next_at = $2
             WHERE webhook_id = $1 AND state = 'pending' AND next_at > $2",
        )
        .bind(&webhook)
        .bind(now)
        .execute()
        .await?;
    }
    Ok(())
}

/// Deletes finished deliveries older than `before`.
pub(crate) async fn prune(tx: &mut WriteTx, before: i64) -> Result<u64> {
    tx.query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND done_at < $1")
        .bind(before)
        .execute()
        .await
}
