//! The delivery loop every server runs: one write transaction per step records the
//! attempts that finished, fans new audit entries out into deliveries and claims the
//! next due ones; the claimed ones are sent concurrently while the loop waits for the
//! next to finish, for a change in the registry, or for a retry to fall due.
//!
//! Order per model holds because only the oldest pending delivery of a webhook and a
//! model is ever claimed, and the next one only after its outcome is recorded. A
//! delivery that keeps failing is retried with exponential backoff and jitter until
//! its retry window ends, then marked failed, and its queue moves on. A server that
//! dies holding claims loses nothing: the lease ends and another step takes them.

use std::time::Duration;

use cairn_core::event::Event;
use cairn_core::webhook::{Protocol, payload};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};

use super::send::{ATTEMPT_TIMEOUT, Sender};
use super::store::{self, Claimed, Outcome};
use crate::Result;
use crate::db::now_ms;
use crate::service::Registry;

/// Deliveries in flight per server at most.
const IN_FLIGHT_MAX: usize = 64;
/// How long a claim holds: an attempt's timeout and room to record it. A delivery
/// claimed by a server that died is sent again once this passes.
const LEASE: Duration = Duration::from_secs(ATTEMPT_TIMEOUT.as_secs() + 5);
/// The longest a caught-up loop waits before looking for due retries.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// The first retry's delay; each next one doubles, up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10 * 60);
/// Finished deliveries are kept this long for `webhooks deliveries` and `redeliver`.
const KEEP_FINISHED: Duration = Duration::from_secs(30 * 24 * 60 * 60);
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);
/// How long a stopping server waits for its attempts in flight.
const DRAIN: Duration = Duration::from_secs(5);

impl Registry {
    /// Delivers webhooks until `shutdown` completes. Errors (a database that does not
    /// answer) are logged and the loop goes on.
    pub async fn deliver_webhooks(&self, shutdown: impl std::future::Future<Output = ()>) {
        let sender = Sender::new(self.webhook_config.allow_private);
        let mut in_flight = FuturesUnordered::new();
        let mut finished: Vec<Outcome> = Vec::new();
        let mut last_prune: Option<std::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let now = now_ms();
            let (head, work) = match self.meta.webhook_work(now).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries: reading the queue failed");
                    (0, false)
                }
            };
            let room = IN_FLIGHT_MAX - in_flight.len();
            if !finished.is_empty() || (work && room > 0) {
                let prune = last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY);
                match self.webhook_step(&finished, now, room, prune).await {
                    Ok(claimed) => {
                        finished.clear();
                        if prune {
                            last_prune = Some(std::time::Instant::now());
                        }
                        for delivery in claimed {
                            in_flight.push(self.attempt(&sender, delivery));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook deliveries: a step failed");
                    }
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                    finished.push(outcome);
                    while let Some(Some(outcome)) = in_flight.next().now_or_never() {
                        finished.push(outcome);
                    }
                }
                _ = self.wait_for_change(head, IDLE_WAIT) => {}
            }
        }
        // Record what finishes soon; the leases of the rest end on their own.
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(outcome) = in_flight.next().await {
                finished.push(outcome);
            }
        });
        let _ = drained.await;
        if !finished.is_empty()
            && let Err(e) = self.webhook_step(&finished, now_ms(), 0, false).await
        {
            tracing::warn!(error = %e, "webhook deliveries: recording at shutdown failed");
        }
    }

    /// One transaction: record `finished`, fan out, claim up to `room`.
    async fn webhook_step(
        &self,
        finished: &[Outcome],
        now: i64,
        room: usize,
        prune: bool,
    ) -> Result<Vec<Claimed>> {
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                store::record(&mut tx, finished, now).await?;
                let claimed = if room > 0 {
                    store::fan_out(&mut tx, now).await?;
                    let lease_until = now + LEASE.as_millis() as i64;
                    store::claim(&mut tx, now, lease_until, room as u32).await?
                } else {
                    Vec::new()
                };
                if prune {
                    store::prune(&mut tx, now - KEEP_FINISHED.as_millis() as i64).await?;
                }
                tx.commit().await?;
                Ok(claimed)
            })
            .await
    }

    /// One attempt of `delivery`, and what to do next.
    async fn attempt(&self, sender: &Sender, delivery: Claimed) -> Outcome {
        let protocol = Protocol::parse(&delivery.protocol);
        let event = Event::from(delivery.event.clone());
        let body = protocol.and_then(|p| payload(p, &event));
        let secret = self.open_secret(delivery.secret.as_deref(), delivery.secret_key.as_deref());
        let (attempt, retryable) = match (protocol, body, secret) {
            (Some(protocol), Some(body), Ok(secret)) => {
                let attempt = sender
                    .send(
                        &delivery.url,
                        protocol,
                        &delivery.id,
                        &body.to_string(),
                        secret.as_deref(),
                        &event.kind,
                    )
                    .await;
                (attempt, true)
            }
            (_, _, Err(e)) => (failure(e.to_string()), true),
            // Nothing to send will ever be made of it: give up at once.
            _ => (
                failure(format!("no payload for event type {}", event.kind)),
                false,
            ),
        };
        let now = now_ms();
        let retry_at = if attempt.succeeded() {
            None
        } else {
            let window_ends = delivery.created_at
                + self
                    .webhook_config
                    .retry_for
                    .as_millis()
                    .min(i64::MAX as u128) as i64;
            if !retryable || now >= window_ends {
                Some(None)
            } else {
                let delay = backoff(delivery.attempts.max(0) as u32);
                Some(Some((now + delay.as_millis() as i64).min(window_ends)))
            }
        };
        if let Some(error) = &attempt.error {
            tracing::debug!(delivery = %delivery.id, url = %delivery.url, %error, "webhook attempt failed");
        }
        Outcome {
            delivery: delivery.id,
            webhook_id: delivery.webhook_id,
            status_code: attempt.status_code,
            error: attempt.error,
            latency_ms: attempt.latency_ms,
            retry_at,
        }
    }
}

fn failure(error: String) -> super::send::Attempt {
    super::send::Attempt {
        status_code: None,
        error: Some(error),
        latency_ms: 0,
        body: None,
    }
}

/// The delay before retry `failed + 1`: doubling from [`BACKOFF_FIRST`] up to
/// [`BACKOFF_MAX`], each drawn between half and all of it (jitter, so that the retries
/// of many deliveries to one endpoint spread out).
fn backoff(failed: u32) -> Duration {
    let full = BACKOFF_FIRST
        .saturating_mul(1u32 << failed.min(20))
        .min(BACKOFF_MAX);
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut byte);
    full / 2 + full / 2 * u32::from(byte[0]) / 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        for failed in 0..30 {
            let full = BACKOFF_FIRST
                .saturating_mul(1u32 << failed.min(20))
                .min(BACKOFF_MAX);
            let delay = backoff(failed);
            assert!(delay >= full / 2 && delay <= full, "{failed}: {delay:?}");
        }
    }
}
