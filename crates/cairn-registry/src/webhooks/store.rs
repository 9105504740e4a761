//! Webhooks on the engine layer: the `webhooks` rows, written with their audit entries,
//! and the delivery log read back (`queue` and `delivered` write it).

use std::collections::HashMap;

use cairn_core::access::Actor;
use cairn_core::webhook::{Delivery, DeliveryState, Protocol, Webhook};
use serde_json::json;

use super::delivered::Success;
use crate::audit::{Action, Change};
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
    pub cursor_seq: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const WEBHOOK_COLUMNS: &str = "id, name, description, url, protocol, events, models, secret, \
                               secret_key, active, cursor_seq, created_by, created_at, updated_at";

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
            cursor_seq: c.next()?,
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
/// entry (its cursor starts there).
pub(crate) async fn insert_webhook(
    tx: &mut WriteTx,
    mut row: WebhookRow,
    actor: &Actor,
) -> Result<WebhookRow> {
    Change::new(actor, Action::WebhookCreate, "", row.id.clone())
        .after(row.audited())
        .append(tx)
        .await?;
    row.cursor_seq = tx
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
    .bind(row.cursor_seq)
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
    // A webhook enabled again gets the events from now on, not those it missed.
    if before.active == 0 && after.active != 0 {
        tx.query("UPDATE webhooks SET cursor_seq = (SELECT seq FROM audit_head WHERE id = 1) WHERE id = $1")
            .bind(&after.id)
            .execute()
            .await?;
    }
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
    for table in ["webhook_deliveries", "webhook_delivered"] {
        tx.query(&format!("DELETE FROM {table} WHERE webhook_id = $1"))
            .bind(&row.id)
            .execute()
            .await?;
    }
    tx.query("DELETE FROM webhooks WHERE id = $1")
        .bind(&row.id)
        .execute()
        .await?;
    Change::new(actor, Action::WebhookDelete, "", row.id.clone())
        .before(row.audited())
        .append(tx)
        .await
}

/// The id of the delivery of event `seq` to webhook `webhook`: the same on every
/// attempt and every server, so a receiver can drop a repeat.
pub(crate) fn delivery_id(webhook: &str, seq: u64) -> String {
    format!("{webhook}.{seq}")
}

/// The webhook and event a delivery id names.
pub(crate) fn parse_delivery_id(id: &str) -> Option<(&str, i64)> {
    let (webhook, seq) = id.rsplit_once('.')?;
    let seq: i64 = seq.parse().ok().filter(|s| *s > 0)?;
    (!webhook.is_empty()).then_some((webhook, seq))
}

/// A `webhook_deliveries` row with its event's type.
struct DeliveryRow {
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

const DELIVERY_COLUMNS: &str = "d.webhook_id, d.seq, a.action, d.model, d.state, d.attempts, \
     d.status_code, d.error, d.latency_ms, d.created_at, d.next_at, d.done_at";

impl Decode for DeliveryRow {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
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
        let seq = u64::try_from(self.seq).map_err(|_| corrupt_row("deliveries.seq"))?;
        Ok(Delivery {
            id: delivery_id(&self.webhook_id, seq),
            webhook_id: self.webhook_id,
            seq,
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

    /// The webhook's deliveries, newest event first, `limit` at most: its rows and its
    /// first-attempt successes (an event is in one or the other) merged.
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
        let successes = match state {
            None | Some(DeliveryState::Delivered) => self.successes(webhook, limit).await?,
            Some(_) => Vec::new(),
        };
        // Newest first, the newest `limit` of the two (each holds `limit` at most).
        let mut merged: Vec<Merged> = rows
            .into_iter()
            .map(Merged::Row)
            .chain(successes.into_iter().map(Merged::Success))
            .collect();
        merged.sort_by_key(|m| std::cmp::Reverse(m.seq()));
        merged.truncate(limit as usize);
        let events = self
            .events_of(merged.iter().filter_map(|m| match m {
                Merged::Success(s) => Some(s.seq),
                Merged::Row(_) => None,
            }))
            .await?;
        merged
            .into_iter()
            .map(|m| match m {
                Merged::Row(row) => row.view(),
                Merged::Success(s) => success_view(webhook, s, events.get(&s.seq)),
            })
            .collect()
    }

    pub(crate) async fn delivery(&self, id: &str) -> Result<Delivery> {
        let missing = || Error::NotFound(Missing::WebhookDelivery(id.to_owned()));
        let (webhook, seq) = parse_delivery_id(id).ok_or_else(missing)?;
        let row: Option<DeliveryRow> = self
            .read(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
                 LEFT JOIN audit_log a ON a.seq = d.seq WHERE d.webhook_id = $1 AND d.seq = $2"
            ))
            .bind(webhook)
            .bind(seq)
            .fetch_optional()
            .await?;
        if let Some(row) = row {
            return row.view();
        }
        let success = self.success(webhook, seq).await?.ok_or_else(missing)?;
        let events = self.events_of([seq]).await?;
        success_view(webhook, success, events.get(&seq))
    }

    /// The type and model of the events numbered `seqs`.
    async fn events_of(
        &self,
        seqs: impl IntoIterator<Item = i64>,
    ) -> Result<HashMap<i64, (String, String)>> {
        let mut q = SqlBuilder::new(
            self.backend(),
            "SELECT seq, action, model FROM audit_log WHERE seq IN (",
        );
        let mut any = false;
        for seq in seqs {
            if any {
                q.push(", ");
            }
            q.push_bind(seq);
            any = true;
        }
        if !any {
            return Ok(HashMap::new());
        }
        q.push(")");
        let rows: Vec<(i64, String, String)> = self.read_sql(q).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|(seq, kind, model)| (seq, (kind, model)))
            .collect())
    }
}

/// A delivery read back from one of the two places the log keeps them.
enum Merged {
    Row(DeliveryRow),
    Success(Success),
}

impl Merged {
    fn seq(&self) -> i64 {
        match self {
            Merged::Row(row) => row.seq,
            Merged::Success(s) => s.seq,
        }
    }
}

/// A first-attempt success as a delivery, with its event's type and model.
fn success_view(webhook: &str, s: Success, event: Option<&(String, String)>) -> Result<Delivery> {
    let seq = u64::try_from(s.seq).map_err(|_| corrupt_row("webhook_delivered.seq"))?;
    let (kind, model) = event.cloned().unwrap_or_default();
    Ok(Delivery {
        id: delivery_id(webhook, seq),
        webhook_id: webhook.to_owned(),
        seq,
        kind,
        model: Some(model).filter(|m| !m.is_empty()),
        state: DeliveryState::Delivered,
        attempts: 1,
        status_code: Some(s.status_code),
        error: None,
        latency_ms: Some(s.latency_ms),
        created_at: time_of(s.created_at),
        next_attempt_at: None,
        done_at: Some(time_of(s.done_at)),
    })
}
