//! Metric logging with group commit. Metrics arrive as many small requests (one per
//! training step, from every run of a sweep at once), and each write costs a round trip
//! to the database and, on SQLite, a turn at the single writer lock. One task writes
//! them instead: whatever requests are waiting when it is free go into one INSERT. A
//! lone request waits for nobody; concurrent ones share a statement.
//!
//! SQLite has one writer anyway, so one task writes. PostgreSQL runs writes side by
//! side, and one task would put all of them on one server process: there, writers
//! take turns at the queue, each leaving with what is waiting.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::db::sql::SqlBuilder;
use crate::db::{Backend, MetadataStore};
use crate::tracking::{MetricValue, push_in, push_metric_values};

/// Rows one statement takes before it stops adding requests (a request of up to
/// 1,000 metrics may go over): 6 bound values a row stays far under both engines'
/// limits on bound values (32,766 SQLite, 65,535 PostgreSQL).
const ROWS_PER_WRITE: usize = 2000;

/// Requests waiting for the writer; senders wait when it is this far behind.
const QUEUE_DEPTH: usize = 1024;

/// What became of one request's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written (values logged before excepted: they are kept once).
    Written,
    /// This request's run was not active when the batch was written, so its rows were
    /// not: the caller checks the run to say why.
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
        let outcomes = write_batch(&meta, &batch, rows).await;
        for (pending, outcome) in batch.into_iter().zip(outcomes) {
            // A request whose caller went away needs no answer.
            let _ = pending.done.send(outcome);
        }
    }
}

/// Writes the batch; returns each request's outcome, in order.
async fn write_batch(meta: &MetadataStore, batch: &[Pending], rows: usize) -> Vec<Outcome> {
    let all: Vec<(&str, &MetricValue)> = batch
        .iter()
        .flat_map(|p| p.metrics.iter().map(|m| (p.run_id.as_str(), m)))
        .collect();
    let same = |outcome| vec![outcome; batch.len()];
    match insert_if_active(meta, &all).await {
        Ok(written) if written as usize == rows => same(Outcome::Written),
        // Fewer rows than sent: a run was not active, or values were logged before.
        // One look at the batch's runs tells which; only the requests of inactive
        // runs are left to their callers.
        Ok(_) => match active_runs(meta, batch).await {
            Ok(active) => batch
                .iter()
                .map(|p| match active.contains(&p.run_id) {
                    true => Outcome::Written,
                    false => Outcome::CheckRun,
                })
                .collect(),
            Err(_) => same(Outcome::CheckRun),
        },
        Err(e) => {
            tracing::debug!(error = %e, requests = batch.len(), "batched metric write failed; writing alone");
            same(Outcome::WriteAlone)
        }
    }
}

/// The runs of `batch` that are active.
async fn active_runs(meta: &MetadataStore, batch: &[Pending]) -> crate::Result<HashSet<String>> {
    let mut runs: Vec<&str> = batch.iter().map(|p| p.run_id.as_str()).collect();
    runs.sort_unstable();
    runs.dedup();
    let mut q = SqlBuilder::new(
        meta.backend(),
        "SELECT id FROM runs WHERE lifecycle_stage = 'active' AND ",
    );
    push_in(&mut q, "id", &runs);
    Ok(meta.read_sql(q).scalar_all().await?.into_iter().collect())
}

/// One INSERT of every (run id, metric) row whose run is active, checked row by row
/// inside the statement (a run deleted meanwhile gets nothing). Returns the rows
/// written: fewer than given when a run is not active or a value was logged before.
pub(crate) async fn insert_if_active(
    meta: &MetadataStore,
    rows: &[(&str, &MetricValue)],
) -> crate::Result<u64> {
    let mut q = SqlBuilder::new(
        meta.backend(),
        "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) SELECT * FROM (",
    );
    push_metric_values(&mut q, rows);
    // VALUES columns are column1, column2… on both engines. A value logged before
    // (same run, key, timestamp, step and value) is kept once, as MLflow keeps it: it
    // is not written again, nor counted.
    q.push(
        ") AS v WHERE EXISTS
           (SELECT 1 FROM runs r WHERE r.id = v.column1 AND r.lifecycle_stage = 'active')
         ON CONFLICT DO NOTHING",
    );
    meta.write_sql(q).execute().await
}
