//! The delivery loop every server runs. A round takes the leases of the webhooks no
//! other server holds, then for each: retries its pending deliveries that are due, sends
//! the events past its cursor, and writes the outcome in one transaction
//! (`queue::write_step`). While it finds nothing to do it waits for the registry to
//! change (the shared audit-head poller) or for a retry to fall due.
//!
//! Order per model: a webhook's events of one model are sent one after the other, in
//! event order; a failure leaves that event pending and queues the model's later events
//! behind it, and a pending queue is retried from its oldest event only. A delivery that
//! keeps failing is retried with exponential backoff and jitter until its retry window
//! ends, then marked failed, and its queue moves on. A server that dies mid-round
//! leaves its cursors where they were: once its leases end, another server (or it,
//! restarted) sends those events again, under the same delivery ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::backoff::Backoff;
use cairn_core::event::Event;
use cairn_core::webhook::{DeliveryState, Webhook, payload};
use futures::stream::{self, StreamExt};

use super::queue::{self, Pending, Step, Written};
use super::send::{ATTEMPT_TIMEOUT, Attempt, Sender, background};
use super::store::{WebhookRow, delivery_id};
use crate::Result;
use crate::db::now_ms;
use crate::service::Registry;

/// How long a webhook's lease holds without renewal: a round's attempts and room to
/// record them. Events a server that died was sending go out again once it passes.
const LEASE: Duration = Duration::from_secs(ATTEMPT_TIMEOUT.as_secs() + 5);
/// Events read past a cursor per round.
const EVENT_BATCH: u32 = 500;
/// Pending deliveries read per round; with more, new events wait for the next round.
const PENDING_BATCH: u32 = 5000;
/// Models whose deliveries go out at once, per webhook.
const MODELS_AT_ONCE: usize = 16;
/// The longest a caught-up loop waits before looking for due retries.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Retry delays: from a second, doubling, up to ten minutes.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(1),
    max: Duration::from_secs(10 * 60),
};
/// Finished deliveries are kept this long for `webhooks deliveries` and `redeliver`.
const KEEP_FINISHED: Duration = Duration::from_secs(30 * 24 * 60 * 60);
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

impl Registry {
    /// Delivers webhooks until `shutdown` completes; a round in progress finishes
    /// first. Errors (a database that does not answer) are logged and the loop goes on.
    pub async fn deliver_webhooks(&self, shutdown: impl std::future::Future<Output = ()>) {
        let owner = uuid::Uuid::new_v4().to_string();
        let sender = Sender::new(self.webhook_config.allow_private);
        let mut last_prune: Option<std::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let (head, work) = match self.meta.webhook_work(now_ms()).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries: reading the queue failed");
                    (0, false)
                }
            };
            // Rounds follow each other at once only while a batch was not enough;
            // otherwise the next waits for the registry to change (the shared poller's
            // pace), so a steady trickle of writes costs a few transactions a second.
            let mut busy = false;
            if work {
                match self.webhook_round(&owner, &sender).await {
                    Ok(more) => busy = more,
                    Err(e) => tracing::warn!(error = %e, "webhook deliveries: a round failed"),
                }
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(std::time::Instant::now());
                if let Err(e) = self.prune_deliveries().await {
                    tracing::warn!(error = %e, "webhook deliveries: pruning failed");
                }
            }
            if busy {
                if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                _ = self.wait_for_change(head, IDLE_WAIT) => {}
            }
        }
        let released = self
            .meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                queue::release_leases(&mut tx, &owner).await?;
                tx.commit().await
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "webhook deliveries: releasing leases failed");
        }
    }

    /// One round over the webhooks this server holds: each one's attempts made, then
    /// every outcome written in one transaction. Answers whether more is waiting (a
    /// full batch was read).
    async fn webhook_round(&self, owner: &str, sender: &Sender) -> Result<bool> {
        let now = now_ms();
        let until = now + LEASE.as_millis() as i64;
        let held = self
            .meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let held = queue::take_leases(&mut tx, owner, now, until).await?;
                tx.commit().await?;
                Ok(held)
            })
            .await?;
        if held.is_empty() {
            return Ok(false);
        }
        // Webhooks whose cursors agree (the usual case) share one read of the log.
        let first = held.iter().map(|row| row.cursor_seq).min().unwrap_or(0);
        let shared = self.events_after(first).await?;
        let steps = held.into_iter().map(|row| {
            let shared = (row.cursor_seq == first).then(|| shared.clone());
            self.webhook_step(sender, row, shared)
        });
        let mut done = Vec::new();
        for result in futures::future::join_all(steps).await {
            match result {
                Ok(Some(step)) => done.push(step),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries: a webhook's round failed")
                }
            }
        }
        if done.is_empty() {
            return Ok(false);
        }
        let until = now_ms() + LEASE.as_millis() as i64;
        let lost = self
            .meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let mut lost = Vec::new();
                for step in &done {
                    let held = queue::write_step(&mut tx, step, owner, until).await?;
                    if !held {
                        lost.push(step.webhook.clone());
                    }
                }
                tx.commit().await?;
                Ok(lost)
            })
            .await?;
        for webhook in lost {
            tracing::warn!(%webhook, "webhook deliveries: the lease ended mid-round; another server sends these again");
        }
        Ok(done.iter().any(|step| step.more))
    }

    /// One webhook's part of a round: its due retries, then its new events; what
    /// became of them (`None`: nothing to write).
    async fn webhook_step(
        &self,
        sender: &Sender,
        row: WebhookRow,
        events_after_cursor: Option<Arc<Vec<Event>>>,
    ) -> Result<Option<Step>> {
        let hook = row.view()?;
        let secret = self
            .open_secret(row.secret.as_deref(), row.secret_key.as_deref())
            .map_err(|e| e.to_string());
        let ctx = Attempts {
            sender: sender.clone(),
            hook: Arc::new(hook.clone()),
            secret: Arc::new(secret),
            retry_for: self
                .webhook_config
                .retry_for
                .as_millis()
                .min(i64::MAX as u128) as i64,
        };
        let now = now_ms();

        // The retry queue: per model, from its oldest pending event while they succeed.
        let pending = self
            .meta
            .pending_deliveries(&hook.id, PENDING_BATCH)
            .await?;
        let complete = pending.len() < PENDING_BATCH as usize;
        let mut queues: Vec<(String, Vec<Pending>)> = Vec::new();
        for p in pending {
            match queues.iter_mut().find(|(m, _)| *m == p.model) {
                Some((_, q)) => q.push(p),
                None => queues.push((p.model.clone(), vec![p])),
            }
        }
        let due: Vec<Vec<Pending>> = queues
            .iter()
            .filter(|(_, q)| q[0].next_at <= now)
            .map(|(_, q)| q.clone())
            .collect();
        let seqs: Vec<u64> = due.iter().flatten().map(|p| p.seq as u64).collect();
        let events: HashMap<u64, Event> = self
            .meta
            .audit_numbered(&seqs)
            .await?
            .into_iter()
            .map(|e| (e.seq, Event::from(e)))
            .collect();
        let due: Vec<Vec<(Pending, Option<Event>)>> = due
            .into_iter()
            .map(|queue| {
                queue
                    .into_iter()
                    .map(|p| {
                        let event = events.get(&(p.seq as u64)).cloned();
                        (p, event)
                    })
                    .collect()
            })
            .collect();
        let retried = on_background(move || due, {
            let ctx = ctx.clone();
            move |queue| ctx.clone().retry(queue)
        })
        .await?;
        // A model stays blocked while any of its events is still pending.
        let mut blocked: HashMap<String, usize> =
            queues.iter().map(|(m, q)| (m.clone(), q.len())).collect();
        for w in &retried {
            if w.state != DeliveryState::Pending
                && let Some(left) = blocked.get_mut(&w.model)
            {
                *left -= 1;
            }
        }
        blocked.retain(|_, left| *left > 0);

        // New events past the cursor, unless the queue was too long to read whole.
        let mut inserted = Vec::new();
        let mut cursor = row.cursor_seq;
        let mut more = !complete;
        if complete {
            let entries = match events_after_cursor {
                Some(shared) => shared,
                None => self.events_after(row.cursor_seq).await?,
            };
            if let Some(last) = entries.last() {
                cursor = last.seq as i64;
            }
            more = entries.len() >= EVENT_BATCH as usize;
            // The webhook's events, one chain per model, are picked out where they
            // are sent: on the deliveries' threads, not on the requests'.
            let hook = Arc::clone(&ctx.hook);
            inserted = on_background(move || chains(&hook, &entries, &blocked), {
                let ctx = ctx.clone();
                move |(chain, blocked)| ctx.clone().send_new(chain, blocked)
            })
            .await?;
        }
        if cursor == row.cursor_seq && retried.is_empty() && inserted.is_empty() {
            return Ok(None);
        }
        let endpoint_back = retried
            .iter()
            .chain(&inserted)
            .any(|w| w.state == DeliveryState::Delivered)
            .then(now_ms);
        Ok(Some(Step {
            webhook: hook.id.clone(),
            cursor,
            inserted,
            retried,
            endpoint_back,
            more,
        }))
    }

    /// Up to [`EVENT_BATCH`] events after number `cursor`.
    async fn events_after(&self, cursor: i64) -> Result<Arc<Vec<Event>>> {
        let entries = self
            .meta
            .audit_after(cursor.max(0) as u64, None, EVENT_BATCH)
            .await?;
        Ok(Arc::new(entries.into_iter().map(Event::from).collect()))
    }

    async fn prune_deliveries(&self) -> Result<()> {
        let before = now_ms() - KEEP_FINISHED.as_millis() as i64;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                queue::prune(&mut tx, before).await?;
                tx.commit().await
            })
            .await
    }
}

/// The events of `entries` that go to `hook`, one chain per model in event order, each
/// with whether its model is `blocked` behind pending deliveries.
fn chains(
    hook: &Webhook,
    entries: &[Event],
    blocked: &HashMap<String, usize>,
) -> Vec<(Vec<Event>, bool)> {
    let filter = hook.filter();
    let mut chains: Vec<(String, Vec<Event>)> = Vec::new();
    for event in entries.iter().filter(|event| filter.wants(event)) {
        let model = event.model.as_deref().unwrap_or_default();
        match chains.iter_mut().find(|(m, _)| m == model) {
            Some((_, chain)) => chain.push(event.clone()),
            None => chains.push((model.to_owned(), vec![event.clone()])),
        }
    }
    chains
        .into_iter()
        .map(|(model, chain)| (chain, blocked.contains_key(&model)))
        .collect()
}

/// Runs `work` on each of the items `items` makes, [`MODELS_AT_ONCE`] at a time, on
/// the deliveries' runtime (where the items are picked out, payloads built and signed,
/// and requests sent, on CPU nobody else wants); answers every outcome, or an error if
/// any task failed — then nothing of the round is written, and it is made again.
async fn on_background<T, F, Fut>(
    items: impl FnOnce() -> Vec<T> + Send + 'static,
    work: F,
) -> Result<Vec<Written>>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<Written>> + Send + 'static,
{
    let task = background().spawn(async move {
        stream::iter(items())
            .map(work)
            .buffer_unordered(MODELS_AT_ONCE)
            .collect::<Vec<Vec<Written>>>()
            .await
    });
    let outcomes = task.await.map_err(|e| {
        crate::Error::Io(std::io::Error::other(format!(
            "a delivery task failed: {e}"
        )))
    })?;
    Ok(outcomes.into_iter().flatten().collect())
}

/// What a round needs to make attempts for one webhook.
#[derive(Clone)]
struct Attempts {
    sender: Sender,
    hook: Arc<Webhook>,
    /// The secret in clear, or why it cannot be had (every attempt then fails so).
    secret: Arc<std::result::Result<Option<String>, String>>,
    retry_for: i64,
}

impl Attempts {
    /// One attempt of delivering event `seq` (`event`, if the log still has it).
    async fn attempt(&self, seq: i64, event: Option<&Event>) -> (Attempt, bool) {
        let id = delivery_id(&self.hook.id, seq.max(0) as u64);
        let id = id.as_str();
        let Some(event) = event else {
            return (
                failure("its event is missing from the audit log".into()),
                false,
            );
        };
        let Some(body) = payload(self.hook.protocol, event) else {
            return (
                failure(format!("no payload for event type {}", event.kind)),
                false,
            );
        };
        let secret = match self.secret.as_ref() {
            Ok(secret) => secret.as_deref(),
            Err(why) => return (failure(why.clone()), true),
        };
        let attempt = self
            .sender
            .send(
                &self.hook.url,
                self.hook.protocol,
                id,
                &body.to_string(),
                secret,
                &event.kind,
            )
            .await;
        (attempt, true)
    }

    /// What becomes of a delivery made `created_at`, after attempt number `attempts`.
    fn outcome(
        &self,
        (seq, model): (i64, String),
        attempts: i64,
        created_at: i64,
        (attempt, retryable): (Attempt, bool),
    ) -> Written {
        let now = now_ms();
        let window_ends = created_at.saturating_add(self.retry_for);
        let (state, next_at, done_at) = if attempt.succeeded() {
            (DeliveryState::Delivered, now, Some(now))
        } else if !retryable || now >= window_ends {
            (DeliveryState::Failed, now, Some(now))
        } else {
            let delay = backoff((attempts - 1).max(0) as u32).as_millis() as i64;
            (DeliveryState::Pending, (now + delay).min(window_ends), None)
        };
        Written {
            seq,
            model,
            state,
            attempts,
            next_at,
            status_code: attempt.status_code,
            error: attempt.error,
            latency_ms: Some(attempt.latency_ms),
            created_at,
            done_at,
        }
    }

    /// A model's pending queue, from its oldest event, while attempts succeed (or give
    /// up for good).
    async fn retry(self, queue: Vec<(Pending, Option<Event>)>) -> Vec<Written> {
        let mut out = Vec::new();
        for (p, event) in queue {
            let result = self.attempt(p.seq, event.as_ref()).await;
            let written = self.outcome((p.seq, p.model), p.attempts + 1, p.created_at, result);
            let stop = written.state == DeliveryState::Pending;
            out.push(written);
            if stop {
                break;
            }
        }
        out
    }

    /// A model's new events in order: sent while they succeed; after a failure (or
    /// behind a pending queue, `blocked`) the rest wait, pending, in order.
    async fn send_new(self, chain: Vec<Event>, blocked: bool) -> Vec<Written> {
        let now = now_ms();
        let mut waiting = blocked;
        let mut out = Vec::with_capacity(chain.len());
        for event in chain {
            let key = (event.seq as i64, event.model.clone().unwrap_or_default());
            if waiting {
                out.push(Written {
                    seq: key.0,
                    model: key.1,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    next_at: now,
                    status_code: None,
                    error: None,
                    latency_ms: None,
                    created_at: now,
                    done_at: None,
                });
                continue;
            }
            let result = self.attempt(key.0, Some(&event)).await;
            let written = self.outcome(key, 1, now, result);
            waiting = written.state == DeliveryState::Pending;
            out.push(written);
        }
        out
    }
}

fn failure(error: String) -> Attempt {
    Attempt {
        status_code: None,
        error: Some(error),
        latency_ms: 0,
        body: None,
    }
}

/// The delay before retry `failed + 1` ([`BACKOFF`], with jitter, so that the retries
/// of many deliveries to one endpoint spread out).
fn backoff(failed: u32) -> Duration {
    let mut random = [0u8; 4];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut random);
    BACKOFF.delay(failed, u32::from_ne_bytes(random))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_delivery_id_names_its_webhook_and_event() {
        use super::super::store::{delivery_id, parse_delivery_id};
        let id = delivery_id("5b98-71aa", 7);
        assert_eq!(parse_delivery_id(&id), Some(("5b98-71aa", 7)));
        for bad in ["", "w", "w.", ".7", "w.x", "w.0", "w.-1"] {
            assert_eq!(parse_delivery_id(bad), None, "{bad}");
        }
    }
}
