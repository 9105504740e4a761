//! Deliveries that succeeded at their first attempt — nearly all of them — kept
//! compactly: one `webhook_delivered` row per webhook per round, holding each event's
//! number, status code, latency and times. A row a round instead of a row an event
//! keeps the delivery log off the single writer's time, which the writes that caused
//! the events need: on SQLite a delivery row cost that writer 3.7 µs (measured), so 3
//! webhooks on a registry taking ~8,000 writes a second cost it a tenth of its time.
//!
//! Every other delivery (pending, failed, retried, queued again) is a row of
//! `webhook_deliveries` (`queue`). An event is in one of the two tables, never both:
//! queueing a delivered event again takes it out of its round's row ([`take`]), so the
//! log reads as the two merged by event number.

use serde::{Deserialize, Serialize};

use super::queue::Written;
use crate::Result;
use crate::db::write::WriteTx;
use crate::db::{MetadataStore, corrupt_row};

/// One first-attempt success. Stored as `[seq, status_code, latency_ms, created_at,
/// done_at]`: a round holds hundreds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Packed", into = "Packed")]
pub(crate) struct Success {
    pub seq: i64,
    pub status_code: u16,
    pub latency_ms: u64,
    pub created_at: i64,
    pub done_at: i64,
}

type Packed = (i64, u16, u64, i64, i64);

impl From<Packed> for Success {
    fn from((seq, status_code, latency_ms, created_at, done_at): Packed) -> Self {
        Self {
            seq,
            status_code,
            latency_ms,
            created_at,
            done_at,
        }
    }
}

impl From<Success> for Packed {
    fn from(s: Success) -> Self {
        (s.seq, s.status_code, s.latency_ms, s.created_at, s.done_at)
    }
}

impl Success {
    /// The success `written` records, if it is one (delivered at its first attempt).
    pub(crate) fn of(written: &Written) -> Option<Self> {
        let delivered = written.state == cairn_core::webhook::DeliveryState::Delivered;
        Some(Self {
            seq: written.seq,
            status_code: written.status_code?,
            latency_ms: written.latency_ms?,
            created_at: written.created_at,
            done_at: written.done_at?,
        })
        .filter(|_| delivered && written.attempts == 1)
    }
}

/// One round's successes for `webhook`, written as one row in event order (a round
/// sends its models' chains side by side: they come back interleaved).
pub(crate) async fn record(
    tx: &mut WriteTx,
    webhook: &str,
    mut successes: Vec<Success>,
) -> Result<()> {
    successes.sort_unstable_by_key(|s| s.seq);
    successes.dedup_by_key(|s| s.seq);
    let (Some(first), Some(last)) = (successes.first(), successes.last()) else {
        return Ok(());
    };
    let done_at = successes.iter().map(|s| s.done_at).max().unwrap_or(0);
    let packed = serde_json::to_string(&successes).expect("successes encode");
    // A round moves its webhook's cursor past the events it sent, under the webhook's
    // lease, in this transaction: no other round can end at the same event.
    tx.query(
        "INSERT INTO webhook_delivered (webhook_id, last_seq, first_seq, done_at, deliveries)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (webhook_id, last_seq) DO NOTHING",
    )
    .bind(webhook)
    .bind(last.seq)
    .bind(first.seq)
    .bind(done_at)
    .bind(packed)
    .execute()
    .await?;
    Ok(())
}

/// Takes event `seq`'s success out of `webhook`'s record (it is being queued again);
/// answers it, or `None` if the record does not hold it.
pub(crate) async fn take(tx: &mut WriteTx, webhook: &str, seq: i64) -> Result<Option<Success>> {
    let round: Option<Round> = tx
        .query(ROUND_THAT_CAN_HOLD)
        .bind(webhook)
        .bind(seq)
        .fetch_optional()
        .await?;
    let Some(Found {
        last_seq,
        mut successes,
        at,
    }) = find(round, seq)?
    else {
        return Ok(None);
    };
    let taken = successes.remove(at);
    if successes.is_empty() {
        tx.query("DELETE FROM webhook_delivered WHERE webhook_id = $1 AND last_seq = $2")
            .bind(webhook)
            .bind(last_seq)
            .execute()
            .await?;
    } else {
        let packed = serde_json::to_string(&successes).expect("successes encode");
        tx.query(
            "UPDATE webhook_delivered SET deliveries = $3
             WHERE webhook_id = $1 AND last_seq = $2",
        )
        .bind(webhook)
        .bind(last_seq)
        .bind(packed)
        .execute()
        .await?;
    }
    Ok(Some(taken))
}

/// Deletes the rounds whose last delivery was done before `before`.
pub(crate) async fn prune(tx: &mut WriteTx, before: i64) -> Result<u64> {
    tx.query("DELETE FROM webhook_delivered WHERE done_at < $1")
        .bind(before)
        .execute()
        .await
}

/// A round's row: its bounds and its packed successes.
type Round = (i64, i64, String);

/// The round of webhook `$1` that can hold event `$2`: rounds do not overlap, so it
/// is the first to end at or after it.
const ROUND_THAT_CAN_HOLD: &str = "SELECT first_seq, last_seq, deliveries FROM webhook_delivered
     WHERE webhook_id = $1 AND last_seq >= $2 ORDER BY last_seq LIMIT 1";

/// A round that holds the event looked for: its last event, its successes, and where
/// among them the event is.
struct Found {
    last_seq: i64,
    successes: Vec<Success>,
    at: usize,
}

/// `round`, if it holds event `seq`.
fn find(round: Option<Round>, seq: i64) -> Result<Option<Found>> {
    let Some(round) = round else {
        return Ok(None);
    };
    let last_seq = round.1;
    let successes = unpack(round)?;
    Ok(successes.iter().position(|s| s.seq == seq).map(|at| Found {
        last_seq,
        successes,
        at,
    }))
}

/// A round's successes, checked: in event order, within the round's bounds.
fn unpack((first_seq, last_seq, packed): Round) -> Result<Vec<Success>> {
    let successes: Vec<Success> =
        serde_json::from_str(&packed).map_err(|_| corrupt_row("webhook_delivered.deliveries"))?;
    let in_bounds = successes
        .iter()
        .all(|s| (first_seq..=last_seq).contains(&s.seq));
    if !in_bounds || !successes.is_sorted_by(|a, b| a.seq < b.seq) {
        return Err(corrupt_row("webhook_delivered.deliveries"));
    }
    Ok(successes)
}

impl MetadataStore {
    /// `webhook`'s first-attempt successes, newest event first, `limit` at most.
    pub(crate) async fn successes(&self, webhook: &str, limit: u32) -> Result<Vec<Success>> {
        // Every round holds one success at least: `limit` rounds are enough.
        let rounds: Vec<Round> = self
            .read(
                "SELECT first_seq, last_seq, deliveries FROM webhook_delivered
                 WHERE webhook_id = $1 ORDER BY last_seq DESC LIMIT $2",
            )
            .bind(webhook)
            .bind(i64::from(limit))
            .fetch_all()
            .await?;
        let mut newest_first = Vec::new();
        for round in rounds {
            newest_first.extend(unpack(round)?.into_iter().rev());
            if newest_first.len() >= limit as usize {
                break;
            }
        }
        newest_first.truncate(limit as usize);
        Ok(newest_first)
    }

    /// Event `seq`'s first-attempt success to `webhook`, if the record holds it.
    pub(crate) async fn success(&self, webhook: &str, seq: i64) -> Result<Option<Success>> {
        let round: Option<Round> = self
            .read(ROUND_THAT_CAN_HOLD)
            .bind(webhook)
            .bind(seq)
            .fetch_optional()
            .await?;
        Ok(find(round, seq)?.map(|found| found.successes[found.at]))
    }
}
