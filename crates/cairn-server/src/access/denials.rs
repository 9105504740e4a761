//! Refused writes go to the security log (`cairn audit denied`), at a bounded rate: a
//! flood of anonymous requests costs the database at most [`RATE`] rows a second (after
//! a burst of [`BURST`]), and what is not recorded is counted in one summary row. The
//! refusal itself never waits for the log: entries go through a bounded queue to one
//! writer task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_core::Denial;
use cairn_registry::Registry;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// Rows a second the log takes in the long run.
const RATE: f64 = 10.0;
/// Rows it takes at once after a quiet time.
const BURST: f64 = 100.0;
/// Refusals waiting for the writer; past it they are counted, not queued.
const QUEUE: usize = 1024;

#[derive(Clone, Default)]
pub(crate) struct DenialLog {
    sender: Option<mpsc::Sender<Denial>>,
    dropped: Arc<AtomicU64>,
}

impl DenialLog {
    /// Starts the writer on the current runtime (none outside one: nothing is
    /// recorded then).
    pub fn start(registry: Registry) -> Self {
        if tokio::runtime::Handle::try_current().is_err() {
            return Self::default();
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(registry, receiver, dropped.clone()));
        Self {
            sender: Some(sender),
            dropped,
        }
    }

    pub fn record(&self, denial: Denial) {
        if let Some(sender) = &self.sender
            && sender.try_send(denial).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A refusal as the log keeps it.
pub(crate) fn denial(
    user: Option<&str>,
    token: Option<&str>,
    method: &str,
    path: &str,
    status: u16,
    reason: impl Into<String>,
) -> Denial {
    Denial {
        at: OffsetDateTime::now_utc(),
        user: user.map(str::to_owned),
        token: token.map(str::to_owned),
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        reason: reason.into(),
    }
}

async fn write(registry: Registry, mut receiver: mpsc::Receiver<Denial>, dropped: Arc<AtomicU64>) {
    let mut allowance = BURST;
    let mut last = Instant::now();
    loop {
        // A quiet second is when the count of what was not recorded gets written.
        let first = match tokio::time::timeout(Duration::from_secs(1), receiver.recv()).await {
            Ok(Some(denial)) => Some(denial),
            Ok(None) => break,
            Err(_) => None,
        };
        let mut batch: Vec<Denial> = first.into_iter().collect();
        while !batch.is_empty() && batch.len() < 256 {
            match receiver.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        allowance = (allowance + last.elapsed().as_secs_f64() * RATE).min(BURST);
        last = Instant::now();
        let kept = (allowance.floor() as usize).min(batch.len());
        allowance -= kept as f64;
        let mut skipped = (batch.len() - kept) as u64 + dropped.swap(0, Ordering::Relaxed);
        batch.truncate(kept);
        if skipped > 0 && allowance >= 1.0 {
            allowance -= 1.0;
            let reason = format!("{skipped} refused requests not recorded: over the log's rate");
            batch.push(denial(None, None, "-", "-", 0, reason));
            skipped = 0;
        }
        dropped.fetch_add(skipped, Ordering::Relaxed);
        if let Err(e) = registry.record_denials(&batch).await {
            tracing::warn!(error = %e, refused = batch.len(), "could not record refused requests");
        }
    }
}
