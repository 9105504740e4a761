//! Metric logging with group commit. Metrics arrive as many small requests (one per
//! training step, from every run of a sweep at once), and each write costs a round trip
//! to the database and, on SQLite, a turn at the single writer lock. One task writes
//! them instead: whatever requests are waiting when it is free go into one INSERT. A
//! lone request waits for nobody; concurrent ones share a statement.
//!
//! SQLite has one writer anyway, so one task writes. PostgreSQL runs writes side by
//! side, and one task would put all of them on one server process: there, writers
//! take turns at the queue, each leaving with what is waiting.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::sql::SqlBuilder;
use crate::store::{Backend, MetadataStore};
use crate::tracking::{MetricValue, push_metric_values};

/// Rows one statement takes before it stops adding requests (a request of up to
/// 1,000 metrics may go over): 6 bound values a row stays far under both engines'
/// limits on bound values (32,766 SQLite, 65,535 PostgreSQL).
const ROWS_PER_WRITE: usize = 2000;

/// Requests waiting for the writer; senders wait when it is this far behind.
const QUEUE_DEPTH: usize = 1024;

/// What became of one request's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written.
    Written,
    /// Some run of the batch was not active, so its rows were not written: whether this
    /// request's were depends on its run, which the caller checks (an active run's were).
    CheckRun,
    /// Nothing of the batch was written (the statement failed, or the writer is gone):
    /// the caller writes alone, and meets the error itself if it is still there.
    WriteAlone,
}

struct Pending {
    run_id: String,
    metrics: Vec<MetricValue>,
    done: oneshot::Sender<Outcome>,
}

#[derive(Clone)]
pub(crate) struct MetricWriter {
    queue: mpsc::Sender<Pending>,
}

impl MetricWriter {
    /// Starts the writer tasks on the current Tokio runtime (one on SQLite, one per two
    /// pool connections on PostgreSQL); they end when the last handle is dropped.
    pub fn start(meta: MetadataStore) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE_DEPTH);
        let writers = match meta.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => (meta.pool().options().get_max_connections() / 2).max(1),
        };
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..writers {
            tokio::spawn(write_batches(meta.clone(), waiting.clone()));
        }
        Self { queue }
    }

    /// Writes `metrics` of run `run_id` (not empty) if the run is active.
    pub async fn write(&self, run_id: &str, metrics: &[MetricValue]) -> Outcome {
        let (done, outcome) = oneshot::channel();
        let pending = Pending {
            run_id: run_id.to_owned(),
            metrics: metrics.to_vec(),
            done,
        };
        if self.queue.send(pending).await.is_err() {
            return Outcome::WriteAlone;
        }
        outcome.await.unwrap_or(Outcome::WriteAlone)
    }
}

async fn write_batches(meta: MetadataStore, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let (batch, rows) = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut rows = first.metrics.len();
            let mut batch = vec![first];
            while rows < ROWS_PER_WRITE {
                let Ok(next) = waiting.try_recv() else { break };
                rows += next.metrics.len();
                batch.push(next);
            }
            (batch, rows)
        };
        let outcome = write_batch(&meta, &batch, rows).await;
        for pending in batch {
            // A request whose caller went away needs no answer.
            let _ = pending.done.send(outcome);
        }
    }
}

async fn write_batch(meta: &MetadataStore, batch: &[Pending], rows: usize) -> Outcome {
    let all: Vec<(&str, &MetricValue)> = batch
        .iter()
        .flat_map(|p| p.metrics.iter().map(|m| (p.run_id.as_str(), m)))
        .collect();
    match insert_if_active(meta, &all).await {
        Ok(written) if written as usize == rows => Outcome::Written,
        Ok(_) => Outcome::CheckRun,
        Err(e) => {
            tracing::debug!(error = %e, requests = batch.len(), "batched metric write failed; writing alone");
            Outcome::WriteAlone
        }
    }
}

/// One INSERT of every (run id, metric) row whose run is active, checked row by row
/// inside the statement (a run deleted meanwhile gets nothing). Returns the rows
/// written.
pub(crate) async fn insert_if_active(
    meta: &MetadataStore,
    rows: &[(&str, &MetricValue)],
) -> crate::Result<u64> {
    let mut q = SqlBuilder::new(
        meta.backend(),
        "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) SELECT * FROM (",
    );
    push_metric_values(&mut q, rows);
    // VALUES columns are column1, column2… on both engines.
    q.push(
        ") AS v WHERE EXISTS
           (SELECT 1 FROM runs r WHERE r.id = v.column1 AND r.lifecycle_stage = 'active')",
    );
    let _writer = meta.write_lock().await;
    Ok(q.build().execute(meta.pool()).await?.rows_affected())
}
